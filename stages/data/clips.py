"""The two value types every dataset reader returns: a labelled clip and a dataset split into train/test."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Clip:
    path: Path  # absolute path of the audio file
    label: int  # index into the dataset's classnames (config order)
    classname: str


@dataclass
class AudioDataset:
    name: str
    root: Path  # the dataset folder actually read
    classnames: list[str]
    train: list[Clip]
    test: list[Clip]
    fold: str = ""  # the official fold used as test split ('' = train.csv/test.csv)
    layout: str = ""  # the reader that produced it: palm | esc50 | folder_per_class
    sources: list[Path] = field(default_factory=list)  # the files that defined the split (CSVs, JSON)

    def split(self, name: str) -> list[Clip]:
        if name not in ("train", "test"):
            raise ValueError(f"split {name!r}: expected 'train' or 'test'")
        return self.train if name == "train" else self.test


def clips_per_class(clips: list[Clip], classnames: list[str]) -> dict[str, int]:
    """classname -> number of clips, every class present (zero counts included), in label order."""
    counts = {c: 0 for c in classnames}
    for clip in clips:
        counts[classnames[clip.label]] += 1
    return counts


def classes_without_train_clips(dataset: AudioDataset) -> list[str]:
    """Classes with no training clip. Not an error while loading (a test-only class is legal for
    zero-shot and for new classes); stage two reports it when it needs to train on such a class."""
    return [c for c, n in clips_per_class(dataset.train, dataset.classnames).items() if n == 0]
