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
    if str(spec) == "pengi:base":
        raise UserError("backbone 'pengi:base': download base.pth from Zenodo record 8387083 (Pengi's weights) "
                        "and pass its path; the weights are not fetched automatically")
    raise UserError(f"backbone {str(spec)!r}: no such file or folder")


def source_sha256(path: Path, cache_dir: str | os.PathLike | None = None) -> str:
    """sha256 of a checkpoint file, memoised on (real path, size, mtime) like weight files are."""
    from stages.backbones.fingerprint import file_sha256_memoised

    return file_sha256_memoised([path], cache_dir)[path]


def fingerprint(spec: str | os.PathLike, kind: str, cache_dir: str | os.PathLike | None = None) -> str:
    """'<kind>:<folder name or file stem>@<16 hex of the checkpoint file's sha256>'."""
    file = checkpoint_file(spec)
    name = Path(spec).name if Path(spec).is_dir() else file.stem
    return f"{kind}:{name}@{source_sha256(file, cache_dir)[:16]}"


def has_single_checkpoint(path: Path) -> bool:
    try:
        return checkpoint_file(path).suffix in CHECKPOINT_SUFFIXES
    except UserError:
        return False


def detect_pengi(path: Path) -> bool:
    """A local .pth (or folder with one) whose keys are Pengi's encoders; torch only once a .pth is found."""
    if not has_single_checkpoint(path):
        return False
    from stages.backbones.checkpoints import read_checkpoint

    try:
        keys = read_checkpoint(checkpoint_file(path)).keys()
    except UserError:
        return False
    return any(k.startswith("caption_encoder.base.") for k in keys) and any(
        k.startswith("audio_encoder.base.htsat.") for k in keys)
