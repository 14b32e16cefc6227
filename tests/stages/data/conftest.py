"""Fixtures of the dataset tests (helpers live in data_fixtures.py)."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def toy_configs(tmp_path, monkeypatch):
    """A folder of dataset TOMLs searched before the repository's; returns a writer: (name, body) -> path."""
    folder = tmp_path / "dataset-configs"
    folder.mkdir()
    monkeypatch.setenv("SEPT_DATASET_CONFIGS", str(folder))

    def write(name: str, body: str) -> Path:
        p = folder / f"{name}.toml"
        p.write_text(body)
        return p

    return write

