"""Fixtures of the neighbor-store tests (helpers live in neighbor_store_kit.py)."""

from __future__ import annotations

import pytest

from cache.store import NeighborStore


@pytest.fixture
def store(tmp_path) -> NeighborStore:
    return NeighborStore(tmp_path / "cache" / "neighbors")
