"""A run directory: resolved config, fingerprints of what it read, metrics; every file written atomically.

`metrics.json` is written last, so its presence means the run finished (a killed run has none and is redone).
"""
from __future__ import annotations

import json
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

    def write_metrics(self, metrics: dict) -> Path:
        return self.write_json(METRICS, metrics)

    def read_metrics(self) -> dict:
        return json.loads((self.path / METRICS).read_text())
