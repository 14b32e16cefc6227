"""CLI verbs: datasets (being built)."""
from __future__ import annotations


def register(cli) -> None:
    pass
