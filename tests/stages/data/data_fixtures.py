"""Helpers for the dataset tests: real audio files (soundfile-written sines), CSVs, tiny dataset configs."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf


def write_sine(path: Path, freq: float = 440.0, rate: int = 16000, seconds: float = 0.1, channels: int = 1,
               subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(round(rate * seconds))) / rate
    x = 0.5 * np.sin(2 * np.pi * freq * t)
    if channels > 1:
        x = np.stack([x] + [np.zeros_like(x)] * (channels - 1), axis=1)
    sf.write(str(path), x, rate, subtype=subtype)
    return path


def write_csv(path: Path, rows: list[tuple[str, str]], header: str = "path,classname") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join(f"{p},{c}\n" for p, c in rows))
    return path


def snapshot(root: Path) -> list[tuple[str, int, int]]:
    """Every path under root with size and mtime: equal snapshots mean nothing was written."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for n in sorted(dirnames + filenames):
            p = Path(dirpath) / n
            st = p.stat()
            out.append((str(p.relative_to(root)), st.st_size if p.is_file() else -1, st.st_mtime_ns))
    return sorted(out)


TOY = '''name = "toy"
display_name = "Toy"
folder = "Toy-Set"
layout = "{layout}"
folds = {folds}
classes = ["bird", "car horn", "dog"]
'''


def toy_spec(layout: str = "palm", folds: list[str] | None = None) -> str:
    return TOY.format(layout=layout, folds=repr(folds or []).replace("'", '"'))
