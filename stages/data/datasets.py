"""Datasets: from a name and a data root to labelled train/test clips.

    ds = load_dataset("esc50", "/data/Audio-Datasets", fold="fold2")
    ds.classnames[ds.train[0].label] == ds.train[0].classname

`data_root` may be the dataset folder itself or a parent holding it under PALM's folder name
(`ESC50/`), the config name (`esc50/`) or the display name, matched case-insensitively. The layout is
recognised from the files present: PALM's CSVs, ESC-50's meta/esc50.csv, or (when the spec says
folder_per_class) sub-folders named after classes; the spec's own layout is tried first.

Fold semantics: a dataset without official folds reads train.csv/test.csv (fold ''); a dataset with official
folds is always read through its fold CSVs (ESC-50's own layout: meta/esc50.csv's fold column), fold '' meaning
its first fold, and `AudioDataset.fold` says which. Running every fold is the caller's loop (`tune --fold all`).
"""
from __future__ import annotations

import os
from pathlib import Path

from cache.errors import UserError
from stages.data.clips import AudioDataset, Clip, classes_without_train_clips, clips_per_class
from stages.data.readers import folder_has_class_dirs, read_esc50, read_folder_per_class, read_palm
from stages.data.specs import DatasetSpec, dataset_classnames, dataset_spec, list_datasets

__all__ = [
    "AudioDataset", "Clip", "DatasetSpec", "classes_without_train_clips", "clips_per_class",
    "dataset_classnames", "dataset_spec", "list_datasets", "load_dataset", "resolve_dataset_folder",
]

_READERS = {"palm": read_palm, "esc50": read_esc50, "folder_per_class": read_folder_per_class}


def _has_palm_files(spec: DatasetSpec, folder: Path) -> bool:
    names = ["train.csv", "test.csv"] + [f"{f}.csv" for f in spec.folds]
    return any((folder / n).is_file() for n in names) or (folder / "csv_files").is_dir()


def detect_layout(spec: DatasetSpec, folder: Path) -> str | None:
    """Which reader fits the files in `folder` (the spec's layout first), or None."""
    checks = {
        "palm": lambda: _has_palm_files(spec, folder),
        "esc50": lambda: (folder / "meta" / "esc50.csv").is_file(),
        "folder_per_class": lambda: spec.layout == "folder_per_class" and folder_has_class_dirs(spec, folder),
    }
    for layout in [spec.layout] + [k for k in checks if k != spec.layout]:
        if checks[layout]():
            return layout
    return None


def _expectation(spec: DatasetSpec, folder: Path) -> str:
    if spec.layout == "folder_per_class":
        return f"{folder}/<class>/*.wav"
    if spec.layout == "esc50":
        return f"{folder}/meta/esc50.csv"
    return f"{folder}/train.csv + test.csv" + (f" or fold CSVs ({spec.folds[0]}.csv, ...)" if spec.folds else "")


def resolve_dataset_folder(spec: DatasetSpec, data_root: str | os.PathLike) -> tuple[Path, str]:
    """(dataset folder, layout) for a data root that is the dataset folder or a parent of it."""
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise UserError(f"data root {root}: not found (expected the {spec.display_name} dataset folder "
                        f"or a folder holding {spec.folder_candidates()[0]}/)")
    # A sub-folder named after the dataset first: a parent holding several datasets may itself look like
    # one (a stray train.csv), while a dataset folder rarely holds a folder named after its own dataset.
    children = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    for name in spec.folder_candidates():
        child = children.get(name.lower())
        if child is not None:
            layout = detect_layout(spec, child)
            if layout is None:
                raise UserError(f"dataset folder {child}: no {spec.name} data found "
                                f"(expected {_expectation(spec, child)})")
            return child, layout
    layout = detect_layout(spec, root)
    if layout:
        return root, layout
    subs = " or ".join(f"{n}/" for n in spec.folder_candidates())
    raise UserError(f"data root {root}: no {spec.name} dataset (expected {_expectation(spec, root)}, "
                    f"or a sub-folder {subs})")


def load_dataset(name: str, data_root: str | os.PathLike, fold: str = "") -> AudioDataset:
    """Read a dataset's clips and labels; labels index into the config's class list.

    Raises UserError (one line naming the path and what was expected) for a missing folder, a CSV
    without path/classname columns, a class name not in the config, a missing audio file, an unknown
    fold or an empty dataset. A class without training clips is allowed (see classes_without_train_clips).
    """
    spec = dataset_spec(name)
    fold = (fold or "").strip()
    if fold and fold not in spec.folds:
        accepted = ", ".join(spec.folds) if spec.folds else "none: leave data.fold empty"
        raise UserError(f"fold {fold!r}: not an official fold of dataset {spec.name} (accepted: {accepted})")
    folder, layout = resolve_dataset_folder(spec, data_root)
    train, test, fold_used, sources = _READERS[layout](spec, folder, fold)
    if not train and not test:
        raise UserError(f"dataset {spec.name} at {folder}: no clips of its {spec.num_classes} classes "
                        f"(expected {_expectation(spec, folder)} listing audio files)")
    if not test:
        raise UserError(f"dataset {spec.name} at {folder}: the test split{' (' + fold_used + ')' if fold_used else ''} "
                        f"has no clips of the dataset's classes (expected at least one)")
    return AudioDataset(name=spec.name, root=folder.resolve(), classnames=list(spec.classes), train=train,
                        test=test, fold=fold_used, layout=layout, sources=sources)
