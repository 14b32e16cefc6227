"""Reading the small CSV tables datasets ship (PALM's train/test CSVs, ESC-50's meta) with precise errors."""
from __future__ import annotations

import csv
from pathlib import Path

from cache.errors import UserError


def read_table(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) for every data row of a CSV that has at least the `required` columns.

    A missing file, a missing column or an undecodable file is a one-line UserError naming the file.
    Column names are matched after stripping spaces; extra columns are ignored. utf-8-sig: a BOM written
    by spreadsheet tools is not part of the first column's name.
    """
    if not path.is_file():
        raise UserError(f"{path}: not found (expected a CSV with columns {','.join(required)})")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [(h or "").strip() for h in (reader.fieldnames or [])]
            missing = [c for c in required if c not in header]
            if missing:
                raise UserError(f"{path}: missing column(s) {', '.join(missing)} "
                                f"(found: {', '.join(header) or 'none'}; expected columns {','.join(required)})")
            reader.fieldnames = header
            rows = []
            for row in reader:
                if not any((v or "").strip() for k, v in row.items() if k is not None):
                    continue  # blank line
                rows.append((reader.line_num, {k: (v or "").strip() for k, v in row.items() if k is not None}))
            return rows
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); expected a CSV file") from None
    except csv.Error as e:
        raise UserError(f"{path}: malformed CSV ({e})") from None
