"""The class list a command works on: --dataset NAME or --classes-file FILE (one class name a line)."""
from __future__ import annotations

from pathlib import Path

from cache.errors import UserError


def read_classes_file(path: Path) -> list[str]:
    """The class names of a --classes-file: one a line, checked as generate_neighbors checks any list."""
    from stages.neighbors.generation import check_classes

    p = Path(path)
    if not p.is_file():
        raise UserError(f"--classes-file {path}: not found (expected a text file, one class name a line)")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"--classes-file {path}: not UTF-8 text") from None
    while lines and not lines[-1].strip():  # a trailing newline is not a blank class
        lines.pop()
    return check_classes(lines, f"--classes-file {path}")


def class_list(dataset: str | None, classes_file: Path | None) -> tuple[list[str], str]:
    """Class names from --dataset or --classes-file (exactly one), and where they came from."""
    from stages.neighbors.generation import check_classes

    if (dataset is None) == (classes_file is None):
        raise UserError("give exactly one of --dataset NAME or --classes-file FILE")
    if classes_file is not None:
        return read_classes_file(classes_file), str(classes_file)
    from stages.data.specs import dataset_classnames

    return check_classes(dataset_classnames(dataset), f"dataset {dataset}"), f"dataset {dataset}"
