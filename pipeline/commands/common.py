"""Options shared by every command: --config, --set, --json; and JSON/table output helpers."""
from __future__ import annotations

import functools
import json
from typing import Any, Callable

import click

from pipeline.config_loader import Config, load_config


def config_options(fn: Callable | None = None, *, recipe: bool = False) -> Callable:
    """Add `--config FILE` and repeatable `--set section.key=value` (and `--recipe NAME` when `recipe`);
    pass a loaded `cfg: Config`."""
    if fn is None:
        return functools.partial(config_options, recipe=recipe)

    @click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                  help="TOML file layered over the defaults (`config keys`) and the recipe.")
    @click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                  help="Override one config key (repeatable), e.g. --set train.epochs=5.")
    @functools.wraps(fn)
    def wrapper(*args, config_file=None, overrides=(), recipe_name=None, **kwargs):
        # A command's own --method (tune) names the method, which picks the recipe's [for_method] table.
        cfg = load_config(config_file, overrides, recipe=recipe_name, method=kwargs.get("method"))
        return fn(*args, cfg=cfg, **kwargs)

    if recipe:
        wrapper = click.option(
            "--recipe", "recipe_name", default=None, metavar="NAME",
            help="Training recipe of an original paper, configs/recipes/NAME.toml (default palm; `sept-pipeline "
                 "config recipes` lists them with their sources). Layered under --config and --set.")(wrapper)
    return wrapper


def backbone_help(what: str = "the model") -> str:
    """--backbone's help: what a spec may be, with every short id the backbone registry knows."""
    from stages.backbones.registry import short_ids

    return (f"Hub id, local folder or checkpoint file of {what}, or a short id ({', '.join(short_ids())}) "
            f"(default: backbone.id).")


def json_option(fn: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print a machine-readable JSON summary on stdout.")(fn)


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


def load_cfg(config_file=None, overrides=()) -> Config:
    return load_config(config_file, overrides)
