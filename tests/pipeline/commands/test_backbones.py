"""`sept-pipeline backbones make-random|info`: outputs and exit codes."""
import json

import pytest
from safetensors.torch import load_file

from cli_kit import run_in_process


def test_make_random_with_one_seed_reproduces_the_weights(tiny_clap_dir, tmp_path):
    out_dir = tmp_path / "cli-clap"
    code, out, _ = run_in_process("backbones", "make-random", "--size", "tiny", "--seed", "0",
                                  "--out", str(out_dir), "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["path"] == str(out_dir) and summary["parameters"] == 493294
    assert summary["fingerprint"].startswith("clap:cli-clap@")
    a, b = load_file(out_dir / "model.safetensors"), load_file(tiny_clap_dir / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    # Same weights, same hash part of the fingerprint as the fixture's folder.
    code, out, _ = run_in_process("backbones", "info", str(tiny_clap_dir), "--json")
    assert code == 0 and json.loads(out)["fingerprint"].split("@")[1] == summary["fingerprint"].split("@")[1]


def test_info_reports_the_backbone(tiny_clap_dir, tiny_backbone):
    code, out, _ = run_in_process("backbones", "info", str(tiny_clap_dir), "--json", "--set", "backbone.device=cpu")
    assert code == 0
    info = json.loads(out)
    assert info["fingerprint"] == tiny_backbone.fingerprint
    assert (info["sample_rate"], info["clip_samples"], info["embed_dim"]) == (16000, 32000, 32)
    assert info["parameters"] == tiny_backbone.num_parameters() and info["device"] == "cpu"
    code, out, _ = run_in_process("backbones", "info", "--set", f"backbone.id={tiny_clap_dir}")
    assert code == 0 and "fingerprint" in out and tiny_backbone.fingerprint in out


@pytest.mark.parametrize("args, message", [
    (["backbones", "make-random", "--size", "huge", "--out", "x"], "'huge' is not one of"),
    (["backbones", "make-random", "--size", "tiny"], "--out"),
    (["backbones", "info", "./no/such/model"], "no such folder"),
    (["backbones", "info", "sept-test/not-cached"], "needs the hub"),
    (["backbones", "info", "--set", "backbone.device=gpu"], "backbone.device"),
])
def test_bad_input_exits_2_with_one_line(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_in_process(*args)
    assert code == 2
    assert message in err


def test_make_random_refuses_an_existing_folder(tiny_clap_dir):
    code, _, err = run_in_process("backbones", "make-random", "--size", "tiny", "--out", str(tiny_clap_dir))
    assert code == 2 and "already exists" in err and len(err.strip().splitlines()) == 1
