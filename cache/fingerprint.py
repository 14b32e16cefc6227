"""Content fingerprints: stable short hashes of bytes, files, JSON-able values and arrays."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hash of a JSON-able value, independent of dict key order."""
    return sha256_bytes(json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode())


def sha256_arrays(named_arrays: Iterable[tuple[str, Any]]) -> str:
    """Hash of (name, numpy array) pairs in the given order: name, dtype, shape and raw bytes."""
    import numpy as np

    h = hashlib.sha256()
    for name, arr in named_arrays:
        a = np.ascontiguousarray(arr)
        h.update(name.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def short(digest: str, n: int = 16) -> str:
    return digest[:n]


def cache_root(explicit: str | os.PathLike | None = None) -> Path:
    """The cache folder: `explicit`, else $SEPT_CACHE_DIR, else $XDG_CACHE_HOME/sept-pipeline."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("SEPT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "sept-pipeline"
