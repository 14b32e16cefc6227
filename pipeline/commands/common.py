"""Options shared by every command: --config, --set, --json; and JSON/table output helpers."""
from __future__ import annotations

import functools
import json
from typing import Any, Callable

import click

from pipeline.config import Config, load_config


def config_options(fn: Callable) -> Callable:
    """Add `--config FILE` and repeatable `--set section.key=value`; pass a loaded `cfg: Config`."""

    @click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                  help="TOML file layered over configs/default.toml.")
    @click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                  help="Override one config key (repeatable), e.g. --set train.epochs=5.")
    @functools.wraps(fn)
    def wrapper(*args, config_file=None, overrides=(), **kwargs):
        cfg = load_config(config_file, overrides)
        return fn(*args, cfg=cfg, **kwargs)

    return wrapper


def json_option(fn: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print a machine-readable JSON summary on stdout.")(fn)


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


def load_cfg(config_file=None, overrides=()) -> Config:
    return load_config(config_file, overrides)
