"""Where the configs shipped with sept-pipeline live, in a checkout and in an installed wheel alike.

The repository's top-level configs/ is the source (dataset class lists, recipes, prompt templates,
sweeps). `stages/configs` is a link to it, so the wheel carries those files as package data of `stages`
and the code reads them through importlib.resources: the same path works from a checkout, an editable
install and `pip install .` run from any folder. (A zipped install is not supported: prompt files and
recipes are hashed and globbed as files.)
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path


def package_root() -> Path:
    """The folder that holds `configs/`: relative config paths such as configs/prompts/x.txt resolve here."""
    return Path(str(resources.files("stages")))


def configs_dir() -> Path:
    return package_root() / "configs"
