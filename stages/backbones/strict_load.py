"""`from_pretrained` that refuses any missing, unexpected or mis-shaped weight (every adapter loads this way).

transformers only warns when a checkpoint does not match its config and initialises what is missing at
random: a frozen tower with random pieces would give plausible-looking, meaningless embeddings.
"""
from __future__ import annotations

from pathlib import Path

from cache.errors import UserError

# Buffers a checkpoint may lack without changing the model: transformers recomputes them at construction
# (arange positions, zero token types, the Swin relative-position table) and BatchNorm's step counter is
# unused in eval mode. Any other missing key is an error.
RECOMPUTED_BUFFERS = ("position_ids", "token_type_ids", "relative_position_index", "num_batches_tracked")


def load_strict(model_class, folder: Path, dtype, what: str):
    """model_class.from_pretrained(folder) or a one-line UserError naming the folder and what is wrong."""
    try:
        model, info = model_class.from_pretrained(folder, dtype=dtype, output_loading_info=True)
    except (OSError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"backbone folder {folder}: cannot load {what} weights ({first})") from None
    missing = sorted(k for k in info["missing_keys"] if not k.endswith(RECOMPUTED_BUFFERS))
    unexpected = sorted(info["unexpected_keys"])
    mismatched = sorted(k[0] if isinstance(k, tuple) else k for k in info["mismatched_keys"])
    problems = [f"{label} {len(keys)} (e.g. {keys[0]})"
                for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mismatched))
                if keys]
    if info["error_msgs"]:
        problems.append(f"errors: {info['error_msgs'][0]}")
    if problems:
        raise UserError(f"backbone folder {folder}: weights do not match its config.json "
                        f"(strict loading): {'; '.join(problems)}")
    return model
