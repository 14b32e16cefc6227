"""The face of sept-pipeline: CLI, config loading, protocols and reports.

Imports run pipeline -> stages -> cache, never back up.
"""

import importlib as _importlib


def _check_layers() -> None:
    """Fail at once, in one line, when `stages` or `cache` is another project's package of that name.

    The three import names are generic (docs/design.md, "Import names"): another distribution that
    installs a top-level `cache` or `stages` into the same environment, or such a package on PYTHONPATH
    or in the folder of a `python -m` run, would otherwise surface as an obscure ImportError deep inside
    a command. A bare folder of that name (a namespace portion, e.g. a cache folder called cache/) is not
    a package of another project and is let through: it cannot take the place of an installed package.
    """
    for name in ("stages", "cache"):
        module = _importlib.import_module(name)
        if getattr(module, "__file__", None) and getattr(module, "SEPT_LAYER", None) != name:
            raise ImportError(f"the import name {name!r} resolves to {module.__file__}, which is not "
                              f"sept-pipeline's {name!r} package: another installed distribution, a folder on "
                              f"PYTHONPATH or the current folder provides it; install sept-pipeline into its own "
                              f"virtual environment, or run the `sept-pipeline` command rather than `python -m`")


_check_layers()
