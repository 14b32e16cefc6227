"""Backbone fingerprints: 'kind:<hub-id-or-folder-name>@<16 hex>[+<dtype>]' from the weight files and
the dtype the towers hold them in (config key backbone.dtype).

Stage one keys every stored embedding by this string, the frozen-feature cache keys every clip by it, and
a warm rerun computes it before deciding whether anything needs encoding, so this module imports neither
torch nor transformers. Both keys derive from here alone, so neither can forget what decides the weights.

The dtype: float32 (the default, and the precision every supported weight file is published in) adds
nothing, so float32 fingerprints are the ones made before the dtype was part of them; bfloat16 and
float16 add '+bfloat16' / '+float16'. A bf16 tower's features and embeddings are other numbers than a
float32 tower's, so they are stored apart.

The hex part is the sha256 over (file name, sha256 of the file) of the weight files that transformers
loads: the *.safetensors files when the folder has any, else the *.bin files. Preferring one format
keeps the fingerprint stable when a hub snapshot later gains the other format's copy of the same
weights. Hashing 600 MB takes seconds, so file hashes are memoised on (real path, size, mtime_ns) in a
small JSON file under the cache folder, written atomically under a file lock (two processes may share
one cache).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from cache.atomic import atomic_write_json
from cache.errors import UserError
from cache.fingerprint import cache_root, sha256_file
from cache.lock import file_lock
from stages.backbones.locate import ModelLocation, locate_model

MEMO_NAME = "weight-file-sha256.json"
DTYPES = ("float32", "bfloat16", "float16")  # config key backbone.dtype
PUBLISHED_DTYPE = "float32"  # the weight files' own precision: no tag in the fingerprint


def weight_files(folder: Path) -> list[Path]:
    """The weight files transformers would read from `folder`, sorted by name."""
    for pattern in ("*.safetensors", "*.bin"):
        found = sorted(p for p in folder.glob(pattern) if p.is_file())
        if found:
            return found
    raise UserError(f"backbone folder {folder}: no *.safetensors or *.bin weight files")


def _memo_path(cache_dir: str | os.PathLike | None) -> Path:
    return cache_root(cache_dir) / "fingerprints" / MEMO_NAME


def _read_memo(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}  # absent or damaged memo: it is only a cache, hashes are recomputed
    return data if isinstance(data, dict) else {}


def file_sha256_memoised(paths: list[Path], cache_dir: str | os.PathLike | None = None) -> dict[Path, str]:
    """sha256 of each file, reusing the memo when (real path, size, mtime_ns) is unchanged."""
    memo_path = _memo_path(cache_dir)
    memo = _read_memo(memo_path)
    result: dict[Path, str] = {}
    fresh: dict[str, dict] = {}
    for path in paths:
        real = os.path.realpath(path)  # hub snapshots are symlinks into blobs/
        st = os.stat(real)
        entry = memo.get(real)
        if entry and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
            result[path] = entry["sha256"]
            continue
        digest = sha256_file(real)
        result[path] = digest
        fresh[real] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    if fresh:
        # Read-modify-write under the lock, so two processes adding entries keep both.
        with file_lock(memo_path.with_name(MEMO_NAME + ".lock")):
            merged = _read_memo(memo_path)
            merged = {k: v for k, v in merged.items() if os.path.exists(k)}  # forget deleted files
            merged.update(fresh)
            atomic_write_json(memo_path, merged)
    return result


def compose(kind: str, name: str, digest: str, dtype: str = PUBLISHED_DTYPE) -> str:
    """'<kind>:<name>@<16 hex of digest>', plus '+<dtype>' when the towers hold the weights in another dtype."""
    if dtype not in DTYPES:
        raise ValueError(f"weights dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    tag = "" if dtype == PUBLISHED_DTYPE else f"+{dtype}"
    return f"{kind}:{name}@{digest[:16]}{tag}"


def fingerprint_dtype(fingerprint: str) -> str:
    """The weights dtype a fingerprint names (see the module doc)."""
    tail = fingerprint.rsplit("@", 1)[-1]
    return tail.split("+", 1)[1] if "+" in tail else PUBLISHED_DTYPE


def fingerprint_location(location: ModelLocation, kind: str = "clap",
                         cache_dir: str | os.PathLike | None = None, dtype: str = PUBLISHED_DTYPE) -> str:
    """The fingerprint of an already located model folder whose weights the towers hold in `dtype`."""
    files = weight_files(location.folder)
    hashes = file_sha256_memoised(files, cache_dir)
    h = hashlib.sha256()
    for path in files:
        h.update(f"{path.name}\t{hashes[path]}\n".encode())
    return compose(kind, location.name, h.hexdigest(), dtype)


def encoder_fingerprint(backbone_cfg, cache_dir: str | os.PathLike | None = None, spec: str | None = None) -> str:
    """The fingerprint a backbone loaded with `backbone_cfg` (a BackboneConfig: id, kind, dtype) will have,
    computed without loading it; `spec` overrides its id (a command's --backbone)."""
    return backbone_fingerprint(spec or backbone_cfg.id, backbone_cfg.kind, cache_dir, dtype=backbone_cfg.dtype)


def backbone_fingerprint(id_or_path: str | os.PathLike, kind: str = "auto",
                         cache_dir: str | os.PathLike | None = None, dtype: str = PUBLISHED_DTYPE) -> str:
    """'<kind>:<id-or-folder-name>@<16 hex>[+<dtype>]' for a local folder, a packaged id or a hub id in the
    local HF cache, with its weights held in `dtype` (config key backbone.dtype).

    `kind` is config key backbone.kind: 'auto' resolves it from the spec (stages/backbones/registry.py).
    Never downloads a model folder: a hub id missing from the local cache is a UserError saying it needs the
    hub. A checkpoint short id ('pengi:base', 'msclap:2023', ...) is its file, fetched as loading would fetch
    it (unless HF_HUB_OFFLINE is set): its fingerprint is that file's hash, the same as for the file's path.
    `cache_dir` is where the hash memo lives (default: cache.fingerprint.cache_root()).
    """
    from stages.backbones.registry import is_checkpoint_kind, resolve_kind

    kind = resolve_kind(str(id_or_path), kind)
    if is_checkpoint_kind(kind):
        return checkpoint_fingerprint(id_or_path, kind, cache_dir, dtype)  # single-file checkpoints: the file's hash
    return fingerprint_location(locate_model(str(id_or_path), download=False), kind, cache_dir, dtype)


def source_sha256(path: Path, cache_dir: str | os.PathLike | None = None) -> str:
    """sha256 of a checkpoint file, memoised on (real path, size, mtime) like weight files are."""
    return file_sha256_memoised([path], cache_dir)[path]


def checkpoint_fingerprint(spec: str | os.PathLike, kind: str, cache_dir: str | os.PathLike | None = None,
                           dtype: str = PUBLISHED_DTYPE) -> str:
    """'<kind>:<folder name or file stem>@<16 hex of the checkpoint file's sha256>[+<dtype>]'."""
    from stages.backbones.checkpoint.files import checkpoint_file, is_short_id

    file = checkpoint_file(spec)  # a short id: its downloaded file (fetched first unless HF_HUB_OFFLINE)
    # A file is named as the user (or the hub snapshot) names it, not as its symlink target is named, so a
    # short id and the path of its file give one fingerprint.
    if is_short_id(spec):
        name = file.stem
    else:
        name = Path(spec).name if Path(spec).is_dir() else Path(spec).expanduser().stem
    return compose(kind, name, source_sha256(file, cache_dir), dtype)
