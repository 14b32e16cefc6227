"""A real `tune` run writes TensorBoard events equal to its train_log.jsonl and metrics.json; `report` links them."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from cli_kit import run_in_process
from pipeline.report.build import build_report

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stages" / "tuning"))
from tuning_kit import fill_store, write_dataset  # noqa: E402

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader  # noqa: E402

TEMPLATES = ["a sound of a {}.", "the sound of {}."]


def tune(*args) -> dict:
    """`sept-pipeline tune ARGS --json` in this process; its metrics (it must succeed)."""
    code, stdout, stderr = run_in_process("tune", *args, "--json")
    assert code == 0, stderr
    return json.loads(stdout)


def events(run: Path) -> dict[tuple[str, int], float]:
    """(tag, step) -> value over every events file of the run; a repeated (tag, step) fails the test."""
    out = {}
    for path in sorted((run / "tensorboard").glob("events.out.tfevents.*")):
        for event in LegacyEventFileLoader(str(path)).Load():
            for value in event.summary.value:
                assert (value.tag, event.step) not in out, f"{value.tag} at step {event.step} written twice"
                out[(value.tag, event.step)] = value.simple_value
    return out


def test_tune_writes_events_equal_to_its_log_and_metrics_and_report_links_them(tmp_path, tiny_clap_dir,
                                                                               tiny_backbone):
    data, cache, runs = tmp_path / "data", tmp_path / "cache", tmp_path / "runs"
    spec = write_dataset(data)
    gkey = fill_store(cache, tiny_backbone, TEMPLATES)
    args = ["--dataset", spec, "--method", "coop", "--sept", "--protocol", "base2new", "--seed", 0, "--shots", 2,
            "--out", runs / "coop-sept", "--data-root", data, "--backbone", tiny_clap_dir, "--cache-dir", cache,
            "--set", f"sept.generation={gkey!r}", "--set", "train.epochs=2", "--set", "method.n_ctx=4",
            "--set", "text.templates=" + json.dumps(TEMPLATES), "--set", "backbone.device=cpu"]
    m = tune(*args)
    run = runs / "coop-sept"
    rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    got = events(run)
    f32 = lambda v: float(np.float32(v))  # noqa: E731  TensorBoard stores float32
    want = {(f"train/{k}", r["epoch"] + 1): f32(v) for r in rows for k, v in r.items() if k not in ("epoch", "steps")}
    want.update({("eval/base_acc", 2): f32(m["base_acc"]), ("eval/new_acc", 2): f32(m["new_acc"]),
                 ("eval/hm", 2): f32(m["hm"]), ("eval/base_macro_f1", 2): f32(m["base"]["macro_f1"]),
                 ("eval/new_macro_f1", 2): f32(m["new"]["macro_f1"])})
    assert got == want
    assert {"train/ce", "train/intra", "train/inter", "train/se", "train/lr"} <= {tag for tag, _ in got}

    md = build_report(runs).markdown
    (events_file,) = (run / "tensorboard").glob("events.out.tfevents.*")
    assert f"`tensorboard --logdir {runs}`" in md
    assert f"[`coop-sept/tensorboard/{events_file.name}`](../coop-sept/tensorboard/{events_file.name})" in md

    # --force with the JSONL only: the old events go with the old run, and the report no longer links any.
    tune(*args, "--force", "--set", 'train.log_to=["jsonl"]')
    assert not (run / "tensorboard").exists() and (run / "train_log.jsonl").is_file()
    assert "## Training curves" not in build_report(runs).markdown
