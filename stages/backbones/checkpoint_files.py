"""Locating and fingerprinting single-file checkpoints (Pengi's .pth), without importing torch.

Stage one fingerprints the backbone on warm reruns before deciding whether anything needs encoding,
and the registry asks every kind's detector about each local path (CLAP folders included), so
nothing here imports torch until a .pth has actually been found.
"""
from __future__ import annotations

import os
from pathlib import Path

from cache.errors import UserError

CHECKPOINT_SUFFIXES = (".pth", ".pt")
# Short ids and where their published weights are.
WHERE_TO_GET = {
    "pengi:base": "base.pth from Zenodo record 8387083 (Pengi)",
    "msclap:2022": "CLAP_weights_2022.pth from the hub repo microsoft/msclap",
    "msclap:2023": "CLAP_weights_2023.pth from the hub repo microsoft/msclap",
}
# A key each kind's checkpoint has and the others lack (their text towers differ).
SIGNATURE_KEYS = {
    "pengi": ("caption_encoder.base.embeddings.token_embedding.weight", "audio_encoder.base.htsat.norm.weight"),
    "msclap-2023": ("caption_encoder.base.wte.weight", "audio_encoder.base.htsat.norm.weight"),
    "msclap-2022": ("caption_encoder.base.embeddings.word_embeddings.weight", "audio_encoder.base.fc1.weight"),
}


def checkpoint_file(spec: str | os.PathLike) -> Path:
    """The checkpoint a spec names: the file itself, or the only *.pth in a folder."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path.resolve()
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix in CHECKPOINT_SUFFIXES and p.is_file())
        if len(found) == 1:
            return found[0].resolve()
        raise UserError(f"backbone folder {path}: expected exactly one *.pth checkpoint, found {len(found)}")
    if str(spec) in WHERE_TO_GET:
        raise UserError(f"backbone {str(spec)!r}: download {WHERE_TO_GET[str(spec)]} and pass its path; "
                        f"these weights are not fetched automatically")
    raise UserError(f"backbone {str(spec)!r}: no such file or folder")


def has_single_checkpoint(path: Path) -> bool:
    try:
        return checkpoint_file(path).suffix in CHECKPOINT_SUFFIXES
    except UserError:
        return False
