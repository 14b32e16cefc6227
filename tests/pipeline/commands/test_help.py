"""Every `--help` of every command stands on its own: an Examples section, and no file it names that a user
does not have. The click group is walked recursively, so a new command is checked without being listed."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pipeline.cli import cli

ROOT = Path(__file__).resolve().parents[3]
# Folders of the repository a help text may point into; anything else it names (data/, runs/, models/...)
# is a folder of the user's.
REPO_DIRS = ("configs", "docs", "benchmarks", "pipeline", "stages", "cache", "tests")
PATH_RE = re.compile(r"(?<![\w./-])((?:%s)/[\w.*/-]*)" % "|".join(REPO_DIRS))


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, cmd in sorted(group.commands.items()):
        yield (*path, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))


COMMANDS = [(" ".join(p), p, c) for p, c in _commands(cli)]


def _help(path: tuple[str, ...]) -> str:
    r = CliRunner().invoke(cli, [*path, "--help"], prog_name="sept-pipeline")
    assert r.exit_code == 0, r.output
    return r.output


def repo_paths(text: str) -> list[str]:
    """Repository paths named in a text; an upper-case placeholder (configs/recipes/NAME.toml) becomes a glob."""
    out = []
    for m in PATH_RE.findall(text):
        p = m.rstrip(".,);:")
        out.append(re.sub(r"[A-Z][A-Z_]+", "*", p))
    return out


def example_lines(text: str) -> list[list[str]]:
    """The example command lines (continuations joined) under the help's Examples section."""
    section = text.split("Examples:", 1)[1]
    joined = re.sub(r"\\\s*\n\s*", " ", section)
    lines = []
    for line in joined.splitlines():
        line = line.split("  #", 1)[0].split("|", 1)[0].strip()
        if line.startswith("sept-pipeline "):
            lines.append(shlex.split(line)[1:])
    return lines


def test_the_walk_finds_every_command():
    names = {n for n, _, _ in COMMANDS}
    assert {"datasets prepare", "neighbors search", "config show", "config keys", "sweep", "tune", "report",
            "inspect", "evaluate", "generate-neighbors", "backbones make-random"} <= names


def test_top_level_help_paths_and_examples():
    text = _help(())
    assert "sept-pipeline tune" in text
    for p in repo_paths(text):
        assert list(ROOT.glob(p)), f"top-level --help names {p}, which is not in the repository"


@pytest.mark.parametrize("name,path,cmd", COMMANDS, ids=[n for n, _, _ in COMMANDS])
def test_help_has_examples_and_names_only_files_that_exist(name, path, cmd):
    text = _help(path)
    assert "Examples:" in text, f"`{name} --help` has no Examples section"
    examples = example_lines(text)
    assert examples, f"`{name} --help`: no `sept-pipeline ...` line under Examples"
    for p in repo_paths(text):
        assert list(ROOT.glob(p)), f"`{name} --help` names {p}, which is not in the repository"


@pytest.mark.parametrize("name,path,cmd", COMMANDS, ids=[n for n, _, _ in COMMANDS])
def test_examples_use_options_the_command_has(name, path, cmd):
    """An example naming a flag that does not exist (like the old `--help-keys`) fails here."""
    for argv in example_lines(_help(path)):
        group, rest = cli, list(argv)
        while isinstance(group, click.Group) and rest and rest[0] in group.commands:
            group = group.commands[rest.pop(0)]
        known = {o for p in group.params for o in (*p.opts, *p.secondary_opts)} | {"--help", "-h"}
        for tok in rest:
            if tok.startswith("-") and not re.fullmatch(r"-?\d+(\.\d+)?", tok):
                assert tok.split("=", 1)[0] in known, f"`{name} --help` example uses {tok}: {' '.join(argv)}"


def test_the_path_check_catches_a_missing_file():
    """The checker itself: a name that is not in the repository is reported, a real one is not."""
    assert repo_paths("see configs/sweeps/b2n-11.toml, or configs/recipes/NAME.toml.") == [
        "configs/sweeps/b2n-11.toml", "configs/recipes/*.toml"]
    assert not list(ROOT.glob("configs/sweeps/b2n-11.toml"))
    assert list(ROOT.glob("configs/recipes/*.toml"))
    assert repo_paths("--root data/ --out runs/x models/tiny-clap") == []
