"""`opt()`: a dataclass field with help text, the way PEFT's configs declare theirs.

Every config section is a frozen dataclass whose fields are declared with `opt`, so the loader
(pipeline/config_loader.py) can print help, check types and name a bad key precisely.

A key that changes only how a run executes (a device, a batch size bounding memory, where logs go), never
what it computes, is declared `opt(..., identity=False)`. That mark is the one list of such keys: a resumed
run, a rerun sweep and the report's variant labels all read it (`config_loader.non_identity_keys`).
"""
from __future__ import annotations

import dataclasses
from typing import Any


def opt(default: Any, help: str, *, identity: bool = True, **kwargs: Any) -> Any:
    """A field with a default and a one-line help text (immutable defaults use default_factory).

    identity=False: the key changes how a run executes, not what it computes (see the module's doc).
    """
    meta = {"help": help, "identity": identity}
    if isinstance(default, (list, dict, set)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta, **kwargs)
    return dataclasses.field(default=default, metadata=meta, **kwargs)


def check_choice(section: str, key: str, value: Any, choices: tuple) -> None:
    from cache.errors import UserError

    if value not in choices:
        raise UserError(f"config key {section}.{key}: {value!r} is not one of {', '.join(map(str, choices))}")


def check_range(section: str, key: str, value: float, lo: float | None = None, hi: float | None = None) -> None:
    from cache.errors import UserError

    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"[{'' if lo is None else lo}, {'' if hi is None else hi}]"
        raise UserError(f"config key {section}.{key}: {value!r} is outside {bounds}")
