"""load_backbone: strict weights, clear errors for bad specs, hub ids through the local HF cache."""
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from cache.errors import UserError
from stages.backbones.config import BackboneConfig
from stages.backbones.factory import load_backbone

CPU = BackboneConfig(device="cpu")


def _copy_with_weights(src, dst, edit):
    shutil.copytree(src, dst)
    weights = load_file(dst / "model.safetensors")
    edit(weights)
    save_file(weights, dst / "model.safetensors", metadata={"format": "pt"})
    return dst


def test_a_missing_weight_is_refused(tiny_clap_dir, tmp_path):
    folder = _copy_with_weights(tiny_clap_dir, tmp_path / "m",
                                lambda w: w.pop("text_projection.linear2.weight"))
    with pytest.raises(UserError, match=r"strict loading.*missing 1 \(e\.g\. text_projection\.linear2\.weight\)"):
        load_backbone(folder, CPU)


def test_an_unexpected_weight_is_refused(tiny_clap_dir, tmp_path):
    folder = _copy_with_weights(tiny_clap_dir, tmp_path / "m",
                                lambda w: w.__setitem__("text_model.extra_head.weight", torch.zeros(2, 2)))
    with pytest.raises(UserError, match="unexpected 1"):
        load_backbone(folder, CPU)


def test_a_mis_shaped_weight_is_refused(tiny_clap_dir, tmp_path):
    folder = _copy_with_weights(tiny_clap_dir, tmp_path / "m",
                                lambda w: w.__setitem__("text_projection.linear2.bias", torch.zeros(7)))
    with pytest.raises(UserError, match="backbone folder .*(mis-shaped|ignore_mismatched_sizes)"):
        load_backbone(folder, CPU)


def test_buffers_the_model_recomputes_may_be_absent(tiny_clap_dir, tmp_path, tiny_backbone):
    def drop(w):
        for key in [k for k in w if k.endswith(("position_ids", "token_type_ids"))]:
            w.pop(key)

    folder = _copy_with_weights(tiny_clap_dir, tmp_path / "m", drop)
    backbone = load_backbone(folder, CPU)
    texts = ["a sound of a dog.", "an audio recording of vacuum cleaner."]
    torch.testing.assert_close(backbone.encode_text(texts), tiny_backbone.encode_text(texts), atol=0, rtol=0)


@pytest.mark.parametrize("spec, message", [
    ("./no/such/folder", "no such folder, and not a hub id"),
    ("/abs/missing", "no such folder, and not a hub id"),
    ("sept-test/not-cached", "not in the local Hugging Face cache.*needs the hub"),
])
def test_specs_that_name_nothing_are_user_errors(spec, message):
    with pytest.raises(UserError, match=message) as info:
        load_backbone(spec, CPU, download=False)
    assert spec in str(info.value)


def test_folders_that_are_not_clap_models_are_user_errors(tiny_clap_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no config.json"):
        load_backbone(tmp_path / "empty", CPU)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        load_backbone(tmp_path / "file", CPU)
    bert = tmp_path / "bert"
    shutil.copytree(tiny_clap_dir, bert)
    config = json.loads((bert / "config.json").read_text())
    (bert / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    with pytest.raises(UserError, match="model_type 'bert'"):
        load_backbone(bert, CPU)


def test_config_values_are_applied(tiny_clap_dir):
    backbone = load_backbone(tiny_clap_dir, BackboneConfig(device="cpu", dtype="bfloat16", text_pooling="eos",
                                                           text_batch_size=3, audio_batch_size=5))
    assert backbone.dtype == torch.bfloat16 and backbone.device.type == "cpu"
    assert backbone.text_pooling == "eos" and backbone.text_batch_size == 3 and backbone.audio_batch_size == 5
    assert backbone.encode_text(["dog"]).dtype == torch.float32  # outputs are float32 whatever the weights
    with pytest.raises(UserError, match="backbone.device"):
        BackboneConfig(device="gpu0")


def _install_in_hf_cache(folder, cache, repo_id, revision="0123456789abcdef0123456789abcdef01234567"):
    """Lay `folder` out as huggingface_hub caches a download: models--owner--name/{refs,snapshots}."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(folder, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)


def test_a_hub_id_loads_from_the_local_hf_cache(tiny_clap_dir, tiny_backbone, tmp_path, monkeypatch):
    import huggingface_hub.constants

    _install_in_hf_cache(tiny_clap_dir, tmp_path / "hub", "sept-test/tiny-clap")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    backbone = load_backbone("sept-test/tiny-clap", CPU, download=False)
    assert backbone.id == "sept-test/tiny-clap"
    # Same weights, same hash; the name part is the hub id.
    assert backbone.fingerprint == "clap:sept-test/tiny-clap@" + tiny_backbone.fingerprint.split("@")[1]
    torch.testing.assert_close(backbone.encode_text(["dog"]), tiny_backbone.encode_text(["dog"]), atol=0, rtol=0)
