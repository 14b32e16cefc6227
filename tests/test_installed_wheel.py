"""`pip install .` (not editable) works away from the checkout: the wheel carries what the code reads.

The wheel is built from a copy of the sources (building writes build/ and *.egg-info/ beside them),
installed into a fresh venv that borrows this environment's dependencies through a .pth line (so no
download, and sept-pipeline itself comes only from the wheel: .pth files of the borrowed folder, such
as the editable install's finder, are not run), and its `sept-pipeline` command is run from an
unrelated folder. That folder holds a `cache/` data folder and a `stages.py`, as a user's folder might:
the installed command must not pick them up (docs/design.md, "Import names").
"""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config_loader import load_config
from stages.data.datasets import load_dataset
from stages.data.demo import build_demo
from stages.data.specs import list_datasets

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "pipeline", "stages", "cache", "configs")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        else:
            shutil.copy2(REPO / name, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-q", "-w", str(tmp / "dist"), str(src)], check=True, env=env, capture_output=True)
    (wheel,) = (tmp / "dist").glob("sept_pipeline-*.whl")

    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    (own_site,) = [Path(p) for p in json.loads(subprocess.check_output(
        [str(py), "-c", "import json, site; print(json.dumps(site.getsitepackages()))"], env=env))]
    (own_site / "borrowed_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    # --ignore-installed: the borrowed folder lists this checkout's editable install, which pip must
    # neither uninstall nor count as already there.
    subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
                    "--no-compile", "-q", str(wheel)], check=True, env=env, capture_output=True)

    work = tmp / "elsewhere"
    (work / "cache" / "features").mkdir(parents=True)
    (work / "stages.py").write_text("raise SystemExit('the folder a command starts in must not be imported')\n")
    env["SEPT_CACHE_DIR"] = str(work / "cache")
    env["HF_HUB_OFFLINE"] = "1"
    return {"venv": venv, "py": py, "site": own_site, "work": work, "env": env, "wheel": wheel}


def sept(installed, *args, cwd=None):
    return subprocess.run([str(installed["venv"] / "bin" / "sept-pipeline"), *args], cwd=cwd or installed["work"],
                          env=installed["env"], capture_output=True, text=True, timeout=300)


def test_the_installed_code_and_configs_come_from_the_wheel(installed):
    probe = ("import json, pipeline, stages, cache; from stages.shipped import configs_dir; "
             "print(json.dumps([pipeline.__file__, stages.__file__, cache.__file__, str(configs_dir())]))")
    files = json.loads(subprocess.check_output([str(installed["py"]), "-c", probe], env=installed["env"],
                                               cwd=installed["work"].parent))
    for f in files:
        assert Path(f).is_relative_to(installed["site"]), f
    configs = Path(files[-1])
    assert configs.is_dir() and not configs.is_symlink()  # real files in the wheel, not a link to the checkout
    shipped = sorted(p.relative_to(configs).as_posix() for p in configs.rglob("*") if p.is_file())
    source = sorted(p.relative_to(REPO / "configs").as_posix() for p in (REPO / "configs").rglob("*") if p.is_file())
    assert shipped == source


def test_config_show_prints_the_defaults_and_a_recipe_from_the_wheel(installed):
    r = sept(installed, "config", "show", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == load_config().to_dict()
    r = sept(installed, "config", "show", "--json", "--recipe", "coop-fewshot")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == load_config(recipe="coop-fewshot").to_dict()


def test_datasets_ls_lists_every_shipped_dataset(installed):
    r = sept(installed, "datasets", "ls", "--json")
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    names = sorted(d["name"] for d in (listed if isinstance(listed, list) else listed["datasets"]))
    assert names == list_datasets() and "demo" in names and "esc50" in names


def test_generate_neighbors_help(installed):
    r = sept(installed, "generate-neighbors", "--help")
    assert r.returncode == 0, r.stderr
    assert "--classes-file" in r.stdout and "--dataset" in r.stdout


def test_zeroshot_evaluate_on_the_demo_dataset(installed, tiny_clap_dir):
    data = installed["work"] / "data"
    build_demo(data, progress=False)
    r = sept(installed, "evaluate", "--method", "zeroshot", "--dataset", "demo", "--data-root", "data",
             "--backbone", str(tiny_clap_dir), "--out", "runs/zs", "--json")
    assert r.returncode == 0, r.stderr
    metrics = json.loads((installed["work"] / "runs" / "zs" / "metrics.json").read_text())
    assert metrics["num_clips"] == len(load_dataset("demo", data).test)
    assert json.loads(r.stdout)["acc"] == metrics["acc"]


def test_a_foreign_cache_package_is_named_in_one_line(installed, tmp_path):
    """`python -m` puts the current folder first on sys.path: another project's `cache` package there is
    reported as such, instead of failing later on a missing `cache.errors`."""
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "__init__.py").write_text("")
    r = subprocess.run([str(installed["py"]), "-m", "pipeline.cli", "config", "keys"], cwd=tmp_path,
                       env=installed["env"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: the import name 'cache' resolves to "), r.stderr
    assert str(tmp_path / "cache" / "__init__.py") in last and "not sept-pipeline's" in last
    # The installed command itself never looks in the folder it starts in.
    r = sept(installed, "config", "keys", cwd=tmp_path)
    assert r.returncode == 0 and "sept.lam" in r.stdout, r.stderr
