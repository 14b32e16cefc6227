"""make_random_clap: seeded, loadable by the standard transformers entry points, right sizes."""
import pytest
import torch
from safetensors.torch import load_file

from cache.errors import UserError
from stages.backbones.clap.random_model import clap_config, make_random_clap, train_tokenizer


def test_same_seed_same_weights_bit_for_bit_other_seed_differs(tiny_clap_dir, tmp_path):
    again = make_random_clap("tiny", seed=0, out=tmp_path / "again")
    other = make_random_clap("tiny", seed=1, out=tmp_path / "other")
    a, b, c = (load_file(d / "model.safetensors") for d in (tiny_clap_dir, again, other))
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tiny_clap_dir / "model.safetensors").read_bytes() == (again / "model.safetensors").read_bytes()
    assert (tiny_clap_dir / "tokenizer.json").read_bytes() == (again / "tokenizer.json").read_bytes()
    assert not torch.equal(a["text_projection.linear1.weight"], c["text_projection.linear1.weight"])


def test_seeding_leaves_the_callers_rng_alone(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    make_random_clap("tiny", seed=5, out=tmp_path / "m")
    assert torch.equal(torch.rand(3), expected)


def test_saved_folder_loads_through_transformers_auto_classes(tiny_clap_dir):
    from transformers import AutoFeatureExtractor, AutoTokenizer, ClapProcessor

    tokenizer = AutoTokenizer.from_pretrained(tiny_clap_dir)
    processor = ClapProcessor.from_pretrained(tiny_clap_dir)
    features = AutoFeatureExtractor.from_pretrained(tiny_clap_dir)
    assert len(tokenizer) == clap_config("tiny").text_config.vocab_size == 1000
    # RoBERTa's special-token ids, which ClapTextConfig's pad/bos/eos ids assume.
    assert [tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id] == [0, 1, 2]
    ids = tokenizer("a sound of a dog.")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2 and tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == "a sound of a dog."
    assert processor.feature_extractor.truncation == "rand_trunc"
    assert (features.sampling_rate, features.nb_max_samples) == (16_000, 32_000)


def test_full_size_is_clap_config_defaults_with_a_matching_tokenizer():
    from transformers import ClapConfig, ClapModel

    config = clap_config("full")
    assert config.to_dict() == ClapConfig().to_dict()
    with torch.device("meta"):  # count parameters without allocating 600 MB
        params = sum(p.numel() for p in ClapModel(config).parameters())
    assert 150e6 < params < 156e6
    tok = train_tokenizer(config.text_config.vocab_size, 512)
    assert len(tok) == config.text_config.vocab_size == 50265
    assert max(tok("a recording of a chainsaw, far away.")["input_ids"]) < 50265


def test_tiny_size_matches_the_documented_architecture():
    from transformers import ClapModel

    config = clap_config("tiny")
    with torch.device("meta"):
        params = sum(p.numel() for p in ClapModel(config).parameters())
    assert 0.4e6 < params < 0.55e6
    assert (config.text_config.hidden_size, config.audio_config.hidden_size, config.projection_dim) == (64, 128, 32)


def test_bad_arguments_are_user_errors(tiny_clap_dir, tmp_path):
    with pytest.raises(UserError, match="--size 'huge'"):
        make_random_clap("huge", 0, tmp_path / "x")
    with pytest.raises(UserError, match="already exists"):
        make_random_clap("tiny", 0, tiny_clap_dir)
    assert not (tmp_path / "x").exists()
