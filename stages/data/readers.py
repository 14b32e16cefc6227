"""One reader per on-disk dataset layout. Each returns (train clips, test clips, fold used, files read).

- palm: `audios/` + `train.csv`/`test.csv` (columns path,classname; path relative to the dataset folder
  or to audios/); a dataset that declares folds is read through its fold CSVs only. Official folds, either
  as PALM distributes them (`csv_files/train_<k>.csv` + `test_<k>.csv`) or as one CSV per fold
  (`fold<k>.csv`, in the folder or in csv_files/): fold k is the test split and the union of the other
  folds the train split.
- esc50: ESC-50 as published (`meta/esc50.csv` with filename,fold,category; `audio/`); fold k is test.
- folder_per_class: `<class>/*.wav|flac|ogg` (sub-folders without audio are ignored), or, in a dataset
  folder without any audio file, `<class>/*.txt` text items (stages/data/item_text.py); a deterministic
  per-class split (see `_hash_split`) recorded in `split.json` beside the class folders, and read back
  from there when it still matches the files (so a hand-made split.json is honoured).

Readers raise UserError (one line, the file and what was expected) and write nothing, except the
split record of folder_per_class, written atomically and only once validation has passed.
"""
from __future__ import annotations

import hashlib
import json
import re
import warnings
from pathlib import Path

from cache.atomic import atomic_write_json
from cache.errors import UserError
from stages.data.clips import Clip
from stages.data.item_text import TEXT_SUFFIXES
from stages.data.specs import DatasetSpec
from stages.data.tables import read_table

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
SPLIT_RECORD = "split.json"

Result = tuple[list[Clip], list[Clip], str, list[Path]]


def _known(spec: DatasetSpec, limit: int = 12) -> str:
    names = list(spec.classes)
    shown = ", ".join(repr(c) for c in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def unknown_class_error(spec: DatasetSpec, where: str, label: str) -> UserError:
    return UserError(f"{where}: class {label!r} is not a class of dataset {spec.name} "
                     f"(expected one of {_known(spec)}; classes come from {spec.path})")


def fold_number(fold: str) -> int:
    m = re.search(r"(\d+)$", fold)
    if not m:
        raise UserError(f"fold {fold!r}: expected a name ending in its number, e.g. 'fold1'")
    return int(m.group(1))


class _ClipMaker:
    """Turns (where, raw path, raw label) into Clips: class lookup, path resolution, missing-file report."""

    def __init__(self, spec: DatasetSpec, folder: Path, audio_dirs: tuple[str, ...]):
        self.spec, self.folder, self.audio_dirs = spec, folder, audio_dirs
        self.missing: list[str] = []

    def make(self, where: str, raw_path: str, raw_label: str) -> Clip | None:
        label = self.spec.class_index(raw_label)
        if label is None:
            if self.spec.subset:
                return None
            raise unknown_class_error(self.spec, where, raw_label)
        if not raw_path:
            raise UserError(f"{where}: empty path (expected an audio file path relative to {self.folder})")
        p = Path(raw_path)
        candidates = [p] if p.is_absolute() else [self.folder / d / p for d in self.audio_dirs]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            tried = " or ".join(str(c) for c in candidates)
            self.missing.append(f"{where}: audio file {raw_path!r} not found (looked for {tried})")
            return None
        return Clip(path=found.resolve(), label=label, classname=self.spec.classes[label])

    def check(self) -> None:
        if self.missing:
            more = f" (and {len(self.missing) - 1} more missing)" if len(self.missing) > 1 else ""
            raise UserError(self.missing[0] + more)


def _read_split_csv(maker: _ClipMaker, csv_path: Path) -> list[Clip]:
    rows = read_table(csv_path, ("path", "classname"))
    if not rows:
        raise UserError(f"{csv_path}: has no rows (expected one row per clip: path,classname)")
    clips = [maker.make(f"{csv_path} line {line}", row["path"], row["classname"]) for line, row in rows]
    return [c for c in clips if c is not None]


def _palm_fold_files(folder: Path, spec: DatasetSpec, fold: str) -> tuple[list[Path], list[Path]]:
    """(train CSVs, test CSVs) of an official fold, in either of the two fold layouts."""
    for sub in (folder, folder / "csv_files"):
        if (sub / f"{fold}.csv").is_file():
            others = [sub / f"{f}.csv" for f in spec.folds if f != fold]
            absent = [str(p) for p in others if not p.is_file()]
            if absent:
                raise UserError(f"{absent[0]}: not found (fold CSVs of {spec.name} are read together: "
                                f"{fold}.csv is the test split and the other folds' CSVs the train split)")
            return others, [sub / f"{fold}.csv"]
    k = fold_number(fold)
    for sub in (folder / "csv_files", folder):
        train, test = sub / f"train_{k}.csv", sub / f"test_{k}.csv"
        if train.is_file() and test.is_file():
            return [train], [test]
    raise UserError(f"dataset {spec.name} at {folder}: no CSVs for {fold} (expected {folder}/csv_files/"
                    f"train_{k}.csv + test_{k}.csv as PALM ships them, or {folder}/{fold}.csv with the other "
                    f"folds' CSVs; a folded dataset never falls back to train.csv/test.csv)")


def read_palm(spec: DatasetSpec, folder: Path, fold: str) -> Result:
    if not fold and spec.folds:
        # A folded dataset is read through its fold CSVs only: a train.csv beside them (PALM's download has
        # one) is some other split, and reading it would silently change what "fold 1" means.
        fold = spec.folds[0]
    if fold:
        train_csvs, test_csvs = _palm_fold_files(folder, spec, fold)
    else:
        train_csvs, test_csvs = [folder / "train.csv"], [folder / "test.csv"]
    maker = _ClipMaker(spec, folder, (".", "audios"))
    train = [c for p in train_csvs for c in _read_split_csv(maker, p)]
    test = [c for p in test_csvs for c in _read_split_csv(maker, p)]
    maker.check()
    return train, test, fold, train_csvs + test_csvs


def read_esc50(spec: DatasetSpec, folder: Path, fold: str) -> Result:
    meta = folder / "meta" / "esc50.csv"
    fold = fold or (spec.folds[0] if spec.folds else "fold1")
    k = fold_number(fold)
    rows = read_table(meta, ("filename", "fold", "category"))
    if not rows:
        raise UserError(f"{meta}: has no rows (expected ESC-50's filename,fold,target,category,... table)")
    maker = _ClipMaker(spec, folder, ("audio",))
    train, test = [], []
    for line, row in rows:
        where = f"{meta} line {line}"
        try:
            row_fold = int(row["fold"])
        except ValueError:
            raise UserError(f"{where}: fold {row['fold']!r} is not an integer (expected 1..5)") from None
        clip = maker.make(where, row["filename"], row["category"])
        if clip is not None:
            (test if row_fold == k else train).append(clip)
    maker.check()
    return train, test, fold, [meta]


def _hash_split(files_by_class: dict[int, list[str]], test_fraction: float) -> dict[str, list[str]]:
    """Per class, order files by sha256 of their relative path; the first round(n * f) go to test
    (at least one when the class has two or more files, never all of them). Depends only on the file
    names, so it is the same on every machine and a new file moves at most a few others."""
    split: dict[str, list[str]] = {"train": [], "test": []}
    for label in sorted(files_by_class):
        files = sorted(files_by_class[label], key=lambda r: hashlib.sha256(r.encode()).hexdigest())
        n = len(files)
        n_test = 0 if n < 2 else min(n - 1, max(1, round(n * test_fraction)))
        split["test"] += files[:n_test]
        split["train"] += files[n_test:]
    return {k: sorted(v) for k, v in split.items()}


def read_folder_per_class(spec: DatasetSpec, folder: Path, fold: str) -> Result:
    if fold:
        raise UserError(f"dataset {spec.name}: layout folder_per_class has no official folds "
                        f"(got fold {fold!r}; expected data.fold = '')")
    files_by_class, label_of = _class_files(spec, folder, AUDIO_SUFFIXES)
    if not label_of:
        # No audio anywhere: a dataset of text items. Only then, so notes beside audio never become items.
        files_by_class, label_of = _class_files(spec, folder, TEXT_SUFFIXES)
    if not label_of:
        raise UserError(f"dataset {spec.name} at {folder}: no audio files (expected {folder}/<class>/*.wav|flac|ogg, "
                        f"or *.txt text items, with <class> one of {_known(spec)})")
    record_path = folder / SPLIT_RECORD
    split = _read_split_record(record_path, set(label_of))
    if split is None:
        split = _hash_split(files_by_class, spec.test_fraction)
        record = {"dataset": spec.name, "test_fraction": spec.test_fraction,
                  "rule": "per class: sort by sha256(relative path), first round(n*test_fraction) to test", **split}
        try:
            atomic_write_json(record_path, record)
        except OSError as e:  # a read-only dataset folder still loads; the split is a pure function anyway
            warnings.warn(f"could not record the split in {record_path} ({e})", stacklevel=2)

    def clips(rels: list[str]) -> list[Clip]:
        return [Clip(path=(folder / r).resolve(), label=label_of[r], classname=spec.classes[label_of[r]])
                for r in rels]

    return clips(split["train"]), clips(split["test"]), "", [record_path]


def _class_files(spec: DatasetSpec, folder: Path, suffixes: tuple[str, ...]
                 ) -> tuple[dict[int, list[str]], dict[str, int]]:
    """(label -> relative paths, relative path -> label) of the files with `suffixes` in class folders."""
    files_by_class: dict[int, list[str]] = {}
    label_of: dict[str, int] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        items = [f for f in sorted(sub.iterdir()) if f.is_file() and f.suffix.lower() in suffixes]
        if not items:
            continue  # not a class folder (docs, metadata): only folders holding items name classes
        label = spec.class_index(sub.name)
        if label is None:
            if spec.subset:
                continue
            raise unknown_class_error(spec, f"{sub}", sub.name)
        for f in items:
            rel = f.relative_to(folder).as_posix()
            files_by_class.setdefault(label, []).append(rel)
            label_of[rel] = label
    return files_by_class, label_of


def _read_split_record(path: Path, files: set[str]) -> dict[str, list[str]] | None:
    """A recorded split that covers exactly the current files, else None (then it is recomputed)."""
    try:
        data = json.loads(path.read_text())
        train, test = list(data["train"]), list(data["test"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if set(train) & set(test) or set(train) | set(test) != files or len(train) + len(test) != len(files):
        return None
    return {"train": train, "test": test}


def folder_has_class_dirs(spec: DatasetSpec, folder: Path) -> bool:
    """True when some sub-folder is named after a class: the folder_per_class layout's only marker."""
    try:
        return any(p.is_dir() and spec.class_index(p.name) is not None for p in folder.iterdir())
    except OSError:
        return False
