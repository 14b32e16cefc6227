"""The efficacy benchmark's archive (benchmarks/results/efficacy-v2/) is enough to recompute its figures:
every file the manifest lists is there with its sha256, and `report --paired` run on the archived run records
alone gives again the paired differences that docs/efficacy.md and the README print (kept beside the archive as
the report's own --json output at archive time)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cli_kit import run_in_process

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT / "benchmarks" / "results" / "efficacy-v2"
MANIFEST = json.loads((ARCHIVE / "MANIFEST.json").read_text(encoding="utf-8"))
# (report folder inside the archive, the --by key, the runs folder it reads); the boundary-filter arm joins
# ("test-by-filter", "sept.boundary_filter") once its runs are archived (docs/efficacy.md: not run yet)
PAIRED = [("test", "sept.enabled", "runs/test"), ("test-by-generation", "sept.generation", "runs/test")]


def test_every_listed_file_is_archived_unchanged():
    assert MANIFEST["counts"]["runs"] > 0
    for entry in MANIFEST["files"]:
        data = (ARCHIVE / entry["path"]).read_bytes()
        assert len(data) == entry["bytes"] and hashlib.sha256(data).hexdigest() == entry["sha256"], entry["path"]


def _key(row: dict) -> tuple:
    return (row["method"], row["metric"], row["reference_variant"], row["other_variant"])


@pytest.mark.parametrize("folder,by,runs", PAIRED, ids=[p[0] for p in PAIRED])
def test_report_recomputes_the_paired_figures_from_the_archive_alone(tmp_path, folder, by, runs):
    kept = json.loads((ARCHIVE / "reports" / f"{folder}.json").read_text(encoding="utf-8"))["paired"]
    if not kept:
        pytest.fail(f"{folder}: the archived report has no paired rows")
    code, out, err = run_in_process("report", str(ARCHIVE / runs), "--paired", "--by", by,
                                    "--out", str(tmp_path / "r"), "--json")
    assert code == 0, err
    again = {_key(r): r for r in json.loads(out)["paired"]}
    for row in kept:
        new = again[_key(row)]
        assert new["differences"] == row["differences"]
        for field in ("mean", "sd", "ci_low", "ci_high"):
            assert new[field] == pytest.approx(row[field], abs=1e-9), (field, _key(row))


def test_the_doc_prints_the_archived_hm_differences():
    doc = (ROOT / "docs" / "efficacy.md").read_text(encoding="utf-8")
    kept = json.loads((ARCHIVE / "reports" / "test.json").read_text(encoding="utf-8"))["paired"]
    for row in kept:
        if row["metric"] == "hm":
            assert f"{row['mean']:+.2f}" in doc, _key(row)
