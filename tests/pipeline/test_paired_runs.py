"""What makes `report --paired` a paired comparison: runs at one seed, with and without SEPT, share the few-shot
draw, the initialisation and the data order. Real `tune` runs (CoOp, tiny random CLAP, sine-tone dataset).

SEPT with alpha = beta = 0 (and lambda = 1) runs the whole neighbor path (the bank is read, neighbors are drawn
from their own generator and embedded through the prompt every step) while its loss adds exactly zero: its
prompt equals the run without SEPT only if both drew the same clips, started from the same context and saw the
batches in the same order. Equal up to float noise, not bit for bit: CoOp embeds the class names in one batch
with the neighbor phrases (learners/coop.py), and a longer batch rounds differently (~1e-7 here). Another start
or another order moves the context by orders of magnitude more (checked on another seed)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cli_kit import run_in_process

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stages" / "tuning"))
from tuning_kit import fill_store, write_dataset  # noqa: E402

TEMPLATES = ["a sound of a {}.", "the sound of {}."]


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_clap_dir, tiny_backbone):
    root = tmp_path_factory.mktemp("paired")
    spec = write_dataset(root / "data", train_per_class=4)
    gkey = fill_store(root / "cache", tiny_backbone, TEMPLATES)
    common = ["--dataset", spec, "--data-root", root / "data", "--backbone", tiny_clap_dir, "--cache-dir",
              root / "cache", "--method", "coop", "--protocol", "base2new", "--shots", 2, "--json",
              "--set", "train.epochs=2", "--set", "method.n_ctx=4", "--set", "train.batch_size=2",
              "--set", "text.templates=" + json.dumps(TEMPLATES), "--set", "backbone.device=cpu",
              "--set", f"sept.generation={gkey!r}"]
    return root, common


def run(world, name: str, *args) -> tuple[dict, dict]:
    root, common = world
    code, stdout, stderr = run_in_process("tune", *common, "--out", root / "runs" / name, *args)
    assert code == 0, stderr
    return json.loads(stdout), load_file(root / "runs" / name / "prompt.safetensors")


def test_runs_at_one_seed_share_draw_initialisation_and_order_with_and_without_sept(world):
    base, base_prompt = run(world, "nosept-s3", "--seed", 3, "--no-sept")
    zero, zero_prompt = run(world, "sept0-s3", "--seed", 3, "--sept", "--set", "sept.alpha=0",
                            "--set", "sept.beta=0")
    assert zero["sept"]["active"] is True and zero["fingerprints"]["store"]["num_phrases"] > 0  # the path ran
    assert zero["fingerprints"]["train_clips"] == base["fingerprints"]["train_clips"]          # the same draw
    assert set(zero_prompt) == set(base_prompt)
    noise = (zero_prompt["ctx"] - base_prompt["ctx"]).abs().max().item()
    assert noise < 1e-5                                            # the same start and the same order
    assert (zero["base_acc"], zero["new_acc"]) == (base["base_acc"], base["new_acc"])

    # ... while a real SEPT loss changes the prompt, and another seed another draw and another prompt.
    _, sept_prompt = run(world, "sept-s3", "--seed", 3, "--sept")
    assert not torch.equal(sept_prompt["ctx"], base_prompt["ctx"])
    other, other_prompt = run(world, "nosept-s4", "--seed", 4, "--no-sept")
    assert other["fingerprints"]["train_clips"] != base["fingerprints"]["train_clips"]
    assert (other_prompt["ctx"] - base_prompt["ctx"]).abs().max().item() > 1000 * max(noise, 1e-7)
