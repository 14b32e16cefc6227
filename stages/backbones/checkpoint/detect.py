"""Which checkpoint kind a local .pth is, told by its signature keys (the registry's detectors).

Apart from stages/backbones/checkpoint/files.py (locating and hashing, torch-free) because reading the keys
needs the safe reader of stages/backbones/checkpoint/read.py, which itself hashes through checkpoint_files:
one module each way would be an import cycle. torch is imported only once a .pth has been found.
"""
from __future__ import annotations

from pathlib import Path

from cache.errors import UserError
from stages.backbones.checkpoint.files import SIGNATURE_KEYS, checkpoint_file, has_single_checkpoint


def kind_of_checkpoint(path: Path) -> str | None:
    """The kind whose signature keys a local .pth holds; torch is imported only once a .pth is found."""
    if not has_single_checkpoint(path):
        return None
    from stages.backbones.checkpoint.read import read_checkpoint

    try:
        keys = read_checkpoint(checkpoint_file(path)).keys()
    except UserError:
        return None
    for kind, signature in SIGNATURE_KEYS.items():
        if all(k in keys for k in signature):
            return kind
    return None


def detect_pengi(path: Path) -> bool:
    return kind_of_checkpoint(path) == "pengi"


def detect_msclap_2022(path: Path) -> bool:
    return kind_of_checkpoint(path) == "msclap-2022"


def detect_msclap_2023(path: Path) -> bool:
    return kind_of_checkpoint(path) == "msclap-2023"
