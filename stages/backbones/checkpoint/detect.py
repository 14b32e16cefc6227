"""Which checkpoint kind a local .pth is, told by its signature keys: the one detector of every checkpoint kind
(the registry calls `has_signature` with each kind's `signature_keys`).

Apart from stages/backbones/checkpoint/files.py (locating, torch-free) because reading the keys needs the
safe reader of stages/backbones/checkpoint/read.py, which imports torch; torch is imported only once a .pth
has been found. The keys of a file are read once per (path, size, mtime), however many kinds ask.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

from cache.errors import UserError
from stages.backbones.checkpoint.files import checkpoint_file, has_single_checkpoint


@functools.lru_cache(maxsize=16)
def _keys(real_path: str, size: int, mtime_ns: int) -> frozenset:
    from stages.backbones.checkpoint.read import read_checkpoint

    try:
        return frozenset(read_checkpoint(real_path).keys())
    except UserError:
        return frozenset()  # not a readable checkpoint: of no kind


def checkpoint_keys(path: Path) -> frozenset:
    """The state-dict keys of the one checkpoint at `path` (a file or a folder holding one); empty when there is
    none or it cannot be read."""
    if not has_single_checkpoint(path):
        return frozenset()
    real = os.path.realpath(checkpoint_file(path))
    st = os.stat(real)
    return _keys(real, st.st_size, st.st_mtime_ns)


def has_signature(path: Path, signature_keys: tuple) -> bool:
    """Whether the checkpoint at `path` holds every one of `signature_keys`."""
    keys = checkpoint_keys(path)
    return bool(keys) and all(k in keys for k in signature_keys)
