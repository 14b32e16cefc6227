"""Text items: a dataset item that is a UTF-8 .txt file (class/item.txt), for backbones whose items are texts.

The readers list these files like audio files; the backbone's item modality (stages/backbones/registry.py)
decides which kind of file an item must be, and stages/audio_features.py checks it before encoding.
"""
from __future__ import annotations

import os
from pathlib import Path

from cache.errors import UserError

TEXT_SUFFIXES = (".txt",)
EXPECTED = "a UTF-8 .txt file holding the item's text"


def is_text_item(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in TEXT_SUFFIXES


def read_item_text(path: str | os.PathLike) -> str:
    """The item's text, surrounding whitespace removed; UserError naming the file when it is not usable."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise UserError(f"text item {path}: not found (expected {EXPECTED})") from None
    except UnicodeDecodeError as e:
        raise UserError(f"text item {path}: not UTF-8 (byte {e.start}); expected {EXPECTED}") from None
    text = text.removeprefix("\ufeff").strip()
    if not text:
        raise UserError(f"text item {path}: empty (expected {EXPECTED})")
    return text
