"""The README and docs/ point at files that exist: every relative Markdown link, and every `configs/...`,
`benchmarks/...` or `scripts/...` path written in backticks, resolves in the repository (anchors aside)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
CODE_PATH = re.compile(r"`((?:configs|benchmarks|scripts|docs)/[A-Za-z0-9_./-]+\.(?:toml|txt|py|sh|md|json))`")
PLACEHOLDER = re.compile(r"/[A-Z]+\.")  # configs/recipes/NAME.toml: a pattern, not a file
ABSENT_ON_PURPOSE = {"configs/default.toml"}  # docs/design.md says why there is none


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_and_named_file_exists(page: Path):
    text = page.read_text(encoding="utf-8")
    missing = []
    for target in LINK.findall(text):
        if "://" in target or target.startswith("mailto:"):
            continue
        if not (page.parent / target).exists():
            missing.append(target)
    for target in CODE_PATH.findall(text):
        if PLACEHOLDER.search(target) or target in ABSENT_ON_PURPOSE:
            continue
        if not (ROOT / target).exists():
            missing.append(target)
    assert not missing, f"{page.relative_to(ROOT)} names files that do not exist: {missing}"


def test_the_readme_names_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
