"""Prompt interpretation: the vocabulary tokens nearest to each learned context vector (CoOp's reading of a
prompt, by Euclidean distance in the token-embedding space), with the run's config and fingerprints.

A learned vector is rarely near any word (CoOp reports as much); the distances are printed so a reader can
tell a close match from the least-far of many far tokens.
"""
from __future__ import annotations

import json
from pathlib import Path

from cache.errors import UserError
from pipeline.runs import METRICS, RunDir
from stages.tuning.methods import method_label, trains

PROMPT_FILE = "prompt.safetensors"


def nearest_tokens(ctx, vocab, k: int, exclude: list[int] | None = None):
    """(ids [M, k], distances [M, k]): for each row of `ctx` [M, W], the k rows of `vocab` [V, W] nearest by
    Euclidean distance, nearest first. Rows listed in `exclude` (special tokens) are never returned."""
    import torch

    ctx = ctx.detach().double()
    vocab = vocab.detach().double()
    dist = torch.cdist(ctx, vocab)
    if exclude:
        dist[:, torch.as_tensor(sorted(set(exclude)), dtype=torch.long)] = float("inf")
    k = min(k, vocab.shape[0] - len(set(exclude or [])))
    values, ids = torch.topk(dist, k, dim=1, largest=False)
    return ids, values


def prompt_file(run: Path) -> tuple[Path, str]:
    """The run's final prompt, or for an unfinished run its latest checkpoint's (and which one it is)."""
    final = run / PROMPT_FILE
    if final.is_file():
        return final, "final"
    from stages.tuning.checkpoint import PROMPT_FILE as CKPT_PROMPT, latest_checkpoint_dir
    from stages.tuning.trainer import CHECKPOINTS

    latest = latest_checkpoint_dir(run / CHECKPOINTS)
    if latest is not None:
        return latest / CKPT_PROMPT, f"checkpoint {latest.name}"
    raise UserError(f"RUN {run}: no {PROMPT_FILE} and no checkpoint (expected a `tune` run directory of a "
                    f"trained method)")


def read_run_files(run: Path) -> tuple[object, dict]:
    """(run record or None when unfinished, resolved config as a dict) of a run directory."""
    if not run.is_dir():
        raise UserError(f"RUN {run}: not a folder (expected a run directory written by `sept-pipeline tune`)")
    config_file = run / "config.json"
    if not config_file.is_file():
        raise UserError(f"RUN {run}: no config.json (expected a run directory written by `sept-pipeline tune`)")
    try:
        config = json.loads(config_file.read_text())
    except ValueError as e:
        raise UserError(f"RUN {run}: config.json is not valid JSON ({e})") from None
    record = RunDir(run).read_record() if (run / METRICS).is_file() else None  # RecordError names the file
    return record, config


def inspect_run(run: str | Path, k: int = 5, backbone: str | None = None) -> dict:
    """Config, fingerprints and, for each learned context vector, its k nearest vocabulary tokens."""
    from pipeline.config_loader import load_config

    run = Path(run)
    record, config = read_run_files(run)  # bad input is refused before torch is imported
    if not (run / "config.toml").is_file():
        raise UserError(f"RUN {run}: no config.toml (expected a run directory written by `sept-pipeline tune`)")
    cfg = load_config(run / "config.toml")
    if backbone:
        cfg = cfg.replace("backbone", id=backbone)
    out = {
        "run": str(run), "finished": record is not None, "method": cfg.method.name, "config": config,
        "fingerprints": record.fingerprints if record else {},
        "protocol": record.protocol if record else None, "eval_split": record.eval_split if record else None,
        "results": {k_: v for k_, v in record.headline().items() if v is not None} if record else {},
        "context": [],
    }
    if not trains(cfg.method.name):
        out["note"] = f"{method_label(cfg.method.name)} learns no context: nothing to interpret"
        return out
    import torch

    from stages.backbones.factory import load_backbone
    from stages.tuning.checkpoint import load_prompt

    model = load_backbone(cfg.backbone.id, cfg.backbone)
    path, which = prompt_file(run)
    state = load_prompt(path, model.fingerprint, cfg.method.name)
    if "ctx" not in state:
        raise UserError(f"prompt {path}: holds {', '.join(state)}, no 'ctx' context vectors to interpret")
    ctx = state["ctx"].float().cpu()
    with torch.no_grad():  # the whole vocabulary through the adapter's own embedding lookup
        vocab = model.token_embeddings(torch.arange(len(model.tokenizer)).unsqueeze(0))[0].float().cpu()
    special = list(getattr(model.tokenizer, "all_special_ids", []))
    ids, dists = nearest_tokens(ctx, vocab, k, exclude=special)
    out.update(prompt_file=str(path), prompt_from=which, backbone_fingerprint=model.fingerprint,
               ctx_shape=list(ctx.shape), ctx_norms=[round(float(n), 4) for n in ctx.norm(dim=1)])
    for i in range(ctx.shape[0]):
        out["context"].append([
            {"token": model.tokenizer.decode([int(t)]), "id": int(t), "distance": round(float(d), 4)}
            for t, d in zip(ids[i], dists[i])
        ])
    return out


def render_text(info: dict) -> str:
    lines = [f"run {info['run']} ({'finished' if info['finished'] else 'unfinished'}), method {info['method']}"]
    if info["results"]:
        lines.append("results: " + ", ".join(f"{k} {v:.2f}" for k, v in info["results"].items()))
    fp = info.get("fingerprints") or {}
    if fp:
        lines.append("fingerprints:")
        lines += [f"  {k}: {json.dumps(v, sort_keys=True) if isinstance(v, dict) else v}" for k, v in fp.items()]
    cfg = info["config"]
    lines.append("config: " + "; ".join(
        f"[{section}] " + ", ".join(f"{k}={v}" for k, v in values.items() if k != "templates")
        for section, values in cfg.items() if section in ("backbone", "method", "train", "sept", "data")))
    if info.get("note"):
        lines.append(info["note"])
        return "\n".join(lines)
    lines.append(f"context {info['ctx_shape'][0]} x {info['ctx_shape'][1]} from {info['prompt_from']} "
                 f"({info['prompt_file']}); nearest vocabulary tokens by Euclidean distance:")
    for i, row in enumerate(info["context"]):
        tokens = "  ".join(f"{t['token']!r} {t['distance']:.3f}" for t in row)
        lines.append(f"  ctx {i + 1:>2} (norm {info['ctx_norms'][i]:.3f}): {tokens}")
    return "\n".join(lines)
