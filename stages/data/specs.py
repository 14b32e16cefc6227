"""Dataset descriptions: configs/datasets/<name>.toml -> a frozen `DatasetSpec`.

A spec needs no audio: stage one reads only its class names (`dataset_classnames`), so neighbors can be
generated before any dataset is downloaded.

Class names. `classes` lists each dataset's classes in PALM's order (PALM sorts the names it finds in
its CSVs; label i is classes[i]) and spelling, so prompts, base/new splits and labels match PALM's. The one
deliberate change: TUT2017, where PALM kept DCASE's raw labels ('city_center'), is written with spaces
('city center') because the names are fed to a text encoder and an LLM; the sorted order is unchanged.
Labels found in data files are matched to `classes` exactly first, then after normalisation (lower case,
'_' -> ' ', runs of spaces collapsed: ESC-50's 'chirping_birds' == PALM's 'chirping birds'), then
through the spec's `[aliases]` table (raw label -> class, e.g. CREMA-D's 'ANG' -> 'anger').

Overlaps. `overlaps = ["esc50"]` (with `overlap_reason`) declares datasets that share clips with this one
(ESC50-Actions is 10 of ESC-50's classes and their clips). The relation is symmetric (`datasets_overlap`): the
cross-dataset protocol leaves such a pair out of a source's target mean. Class names two datasets merely
share (ESC-50's 'siren' and UrbanSound8K's) are no overlap: the cross protocol lists them.

Suite. `suite = "palm11"` names the benchmark suite a dataset belongs to (palm11: PALM's 11 audio datasets;
text-proxy: wordnet-sounds and gcide-sounds, the text proxy and its shifted target); a cross-dataset run's
default targets are the other datasets of its source's suite. A dataset of no suite (demo) is never a default
target.

Folds. `folds` lists the official cross-validation folds ('fold1', 'fold2', ...: a name ending in its
number, which PALM's CSV names use: csv_files/train_<k>.csv + test_<k>.csv). A folded dataset is always
read through its fold CSVs, never through a train.csv/test.csv that happens to sit beside them.

Where specs are found: a path to a .toml file, else `<name>.toml` (case-insensitive) in the folders of
$SEPT_DATASET_CONFIGS (os.pathsep-separated, searched first) and then configs/datasets/ shipped
with the package (stages/shipped.py).
"""
from __future__ import annotations

import functools
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cache.errors import UserError
from stages.shipped import configs_dir

LAYOUTS = ("palm", "esc50", "folder_per_class")
DATASET_CONFIG_DIR = configs_dir() / "datasets"
ENV_DIRS = "SEPT_DATASET_CONFIGS"


def normalize_label(text: str) -> str:
    """The form two spellings of one class share: lower case, underscores as spaces, single spaces."""
    return " ".join(str(text).replace("_", " ").split()).lower()


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    display_name: str
    classes: tuple[str, ...]
    layout: str
    folds: tuple[str, ...] = ()
    folder: str = ""  # PALM's folder name (e.g. "ESC50"); a data root may hold <folder>/ or <name>/
    task: str = ""
    source: str = ""
    subset: bool = False  # rows/folders of classes outside `classes` are skipped, not errors
    test_fraction: float = 0.3  # folder_per_class: share of each class's clips drawn into test
    aliases: tuple[tuple[str, str], ...] = ()
    overlaps: tuple[str, ...] = ()  # datasets sharing clips with this one (see datasets_overlap)
    overlap_reason: str = ""
    suite: str = ""  # the benchmark it belongs to ("palm11", "text-proxy"): cross-dataset default targets share it
    template: str = ""  # one hand-crafted template for this dataset (text.dataset_template); "" = none
    path: Path = field(default=Path(), compare=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @functools.cached_property
    def _lookup(self) -> tuple[dict[str, int], dict[str, int]]:
        exact = {c: i for i, c in enumerate(self.classes)}
        loose = {normalize_label(c): i for i, c in enumerate(self.classes)}
        for raw, target in self.aliases:
            loose.setdefault(normalize_label(raw), exact[target])
        return exact, loose

    def class_index(self, label: str) -> int | None:
        """Index into `classes` of a label as written in a data file, or None when it names no class."""
        exact, loose = self._lookup
        if label in exact:
            return exact[label]
        return loose.get(normalize_label(label))

    def folder_candidates(self) -> list[str]:
        """Sub-folder names under which a data root may hold this dataset, most specific first."""
        names = [n for n in (self.folder, self.name, self.display_name) if n]
        return list(dict.fromkeys(names))


_KEYS = {"name", "display_name", "classes", "layout", "folds", "folder", "task", "source", "subset",
         "test_fraction", "aliases", "overlaps", "overlap_reason", "prepare", "suite", "template"}
FOLD_NAME = re.compile(r"fold[1-9][0-9]*")


def _fail(path: Path, message: str) -> UserError:
    return UserError(f"dataset config {path}: {message}")


def _str_list(path: Path, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail(path, f"key {key} must be a list of non-empty strings, got {value!r}")
    return tuple(value)


def parse_spec(path: Path) -> DatasetSpec:
    """Read and check one dataset TOML; every problem is a one-line UserError naming file and key."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise _fail(path, "not found (expected a TOML file)") from None
    except tomllib.TOMLDecodeError as e:
        raise _fail(path, f"not valid TOML ({e})") from None
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise _fail(path, f"unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))})")
    for key in ("name", "display_name", "classes", "layout"):
        if key not in raw:
            raise _fail(path, f"missing key {key}")
    name = raw["name"]
    if not isinstance(name, str) or name != path.stem.lower() or name != name.lower():
        raise _fail(path, f"key name {name!r} must equal the lower-case file name {path.stem.lower()!r}")
    classes = _str_list(path, "classes", raw["classes"])
    if not classes:
        raise _fail(path, "key classes is empty (expected at least one class name)")
    seen: dict[str, str] = {}
    for c in classes:
        k = normalize_label(c)
        if k in seen:
            raise _fail(path, f"classes {seen[k]!r} and {c!r} are the same name after normalisation")
        seen[k] = c
    layout = raw["layout"]
    if layout not in LAYOUTS:
        raise _fail(path, f"key layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    folds = _str_list(path, "folds", raw.get("folds", []))
    if len(set(folds)) != len(folds):
        raise _fail(path, f"key folds has duplicates: {list(folds)}")
    for f in folds:
        if not FOLD_NAME.fullmatch(f):
            raise _fail(path, f"key folds: {f!r} is not a fold name (expected 'fold1', 'fold2', ...)")
    overlaps = _str_list(path, "overlaps", raw.get("overlaps", []))
    if name in overlaps:
        raise _fail(path, f"key overlaps lists the dataset itself ({name!r}); list other datasets")
    reason = raw.get("overlap_reason", "")
    if not isinstance(reason, str) or (overlaps and not reason.strip()):
        raise _fail(path, "key overlap_reason must be a non-empty string saying what is shared "
                          "(required when overlaps is given)")
    aliases_raw = raw.get("aliases", {})
    if not isinstance(aliases_raw, dict):
        raise _fail(path, "[aliases] must be a table of raw label = class name")
    for alias, target in aliases_raw.items():
        if target not in classes:
            raise _fail(path, f"alias {alias!r} -> {target!r}: the target is not in classes")
    test_fraction = raw.get("test_fraction", 0.3)
    if not isinstance(test_fraction, (int, float)) or isinstance(test_fraction, bool) or not 0 < test_fraction < 1:
        raise _fail(path, f"key test_fraction {test_fraction!r} must be a number in (0, 1)")
    subset = raw.get("subset", False)
    if not isinstance(subset, bool):
        raise _fail(path, f"key subset {subset!r} must be true or false")
    if not isinstance(raw.get("prepare", {}), dict):
        # How `datasets prepare` builds this dataset: read and checked by that dataset's builder only.
        raise _fail(path, "[prepare] must be a table (the recipe `datasets prepare` builds the dataset from)")
    for key in ("display_name", "folder", "task", "source"):
        if key in raw and not isinstance(raw[key], str):
            raise _fail(path, f"key {key} must be a string")
    suite = raw.get("suite", "")
    if not isinstance(suite, str) or ("suite" in raw and not suite.strip()):
        raise _fail(path, f"key suite {suite!r} must be a non-empty string (the benchmark the dataset belongs to, "
                          f"e.g. \"palm11\")")
    template = raw.get("template", "")
    if "template" in raw and (not isinstance(template, str) or template.count("{}") != 1):
        raise _fail(path, f"key template {template!r} must be a string with exactly one '{{}}' (the class name)")
    return DatasetSpec(
        name=name,
        display_name=raw["display_name"],
        classes=classes,
        layout=layout,
        folds=folds,
        folder=raw.get("folder", ""),
        task=raw.get("task", ""),
        source=raw.get("source", ""),
        subset=subset,
        test_fraction=float(test_fraction),
        aliases=tuple(sorted(aliases_raw.items())),
        overlaps=tuple(o.lower() for o in overlaps),
        overlap_reason=reason.strip(),
        suite=suite.strip(),
        template=template,
        path=path,
    )


@functools.lru_cache(maxsize=256)
def _parse_cached(path: str, mtime_ns: int) -> DatasetSpec:
    return parse_spec(Path(path))


def config_dirs() -> list[Path]:
    extra = [Path(p).expanduser() for p in os.environ.get(ENV_DIRS, "").split(os.pathsep) if p]
    return extra + [DATASET_CONFIG_DIR]


def _spec_files() -> dict[str, Path]:
    """name -> TOML file; an earlier folder wins (user folders shadow the repository's)."""
    found: dict[str, Path] = {}
    for folder in config_dirs():
        if folder.is_dir():
            for p in sorted(folder.glob("*.toml")):
                found.setdefault(p.stem.lower(), p)
    return found


def list_datasets() -> list[str]:
    """Names of every known dataset config, sorted."""
    return sorted(_spec_files())


def dataset_spec(name: str | os.PathLike) -> DatasetSpec:
    """The spec of a dataset by name (case-insensitive; PALM's folder names work: 'ESC50-Actions'),
    or of a TOML file given by path."""
    text = str(name)
    if text.endswith(".toml"):
        p = Path(text).expanduser()
        if not p.is_file():
            raise UserError(f"dataset config {p}: not found (expected a TOML file)")
        return _parse_cached(str(p.resolve()), p.stat().st_mtime_ns)
    files = _spec_files()
    p = files.get(text.lower())
    if p is None:
        known = ", ".join(sorted(files)) or "none"
        raise UserError(f"dataset {text!r}: unknown (known: {known}; or give a path to a dataset .toml)")
    return _parse_cached(str(p.resolve()), p.stat().st_mtime_ns)


def dataset_classnames(name: str | os.PathLike) -> list[str]:
    """Class names of a dataset in label order, from its config alone (no audio needed)."""
    return list(dataset_spec(name).classes)


def datasets_overlap(a: DatasetSpec, b: DatasetSpec) -> str:
    """Why datasets `a` and `b` share clips ('' when they do not): either one may declare it."""
    if b.name in a.overlaps:
        return f"{a.name} declares overlaps = [{b.name!r}]: {a.overlap_reason}"
    if a.name in b.overlaps:
        return f"{b.name} declares overlaps = [{a.name!r}]: {b.overlap_reason}"
    return ""
