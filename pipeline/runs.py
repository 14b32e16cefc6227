"""A run directory: resolved config, fingerprints of what it read, its run record; every file written atomically.

`metrics.json` (the run record, pipeline/protocols/record.py) is written last, so its presence means the run
finished (a killed run has none and is redone).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cache.atomic import atomic_write_json, atomic_write_text
from cache.errors import UserError

METRICS = "metrics.json"


class RunDir:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"--out {self.path}: exists and is not a folder (expected a run directory)")

    def finished(self) -> bool:
        return (self.path / METRICS).is_file()

    def ensure(self) -> "RunDir":
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def write_config(self, cfg: Any) -> None:
        """config.toml (for humans and --config reuse) and config.json (for scripts)."""
        from pipeline.config_loader import to_toml

        self.ensure()
        atomic_write_text(self.path / "config.toml", to_toml(cfg))
        atomic_write_json(self.path / "config.json", cfg.to_dict())

    def write_json(self, name: str, obj: Any) -> Path:
        self.ensure()
        atomic_write_json(self.path / name, obj)
        return self.path / name

    def write_record(self, record) -> Path:
        """The run record as metrics.json (atomic: a reader sees the old file or the whole new one)."""
        self.ensure()
        atomic_write_text(self.path / METRICS, record.to_json() + "\n")
        return self.path / METRICS

    def read_record(self):
        """The run record in metrics.json; RecordError (one line naming the file) when it is not one."""
        from pipeline.protocols.record import RunRecord

        return RunRecord.read(self.path / METRICS)
