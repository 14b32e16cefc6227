import pytest

from cache.errors import UserError
from pipeline.config_loader import Config, load_config, parse_override


def test_defaults_file_and_overrides_layer(tmp_path):
    f = tmp_path / "exp.toml"
    f.write_text("[train]\nepochs = 7\n[sept]\nenabled = true\n")
    cfg = load_config(f, ["train.lr=0.01", "text.templates=['a {} b']"])
    assert cfg.train.epochs == 7 and cfg.train.lr == 0.01 and cfg.sept.enabled
    assert cfg.text.templates == ["a {} b"]
    assert len(load_config().text.templates) == 8  # T = 8: the dataclass default


def test_config_is_frozen():
    cfg = load_config()
    with pytest.raises(Exception):
        cfg.train.epochs = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[trian]\nepochs=1\n", "unknown section [trian]"),
        ("[train]\nepoch=1\n", "unknown key train.epoch"),
        ("[train]\nepochs='ten'\n", "key train.epochs: expected int"),
        ("[train]\nepochs=", "not valid TOML"),
    ],
)
def test_bad_config_file_names_file_and_key(tmp_path, text, needle):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(UserError) as e:
        load_config(f)
    assert needle in str(e.value) and str(f) in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_validation_in_post_init():
    with pytest.raises(UserError, match="method.name"):
        load_config(overrides=["method.name=prompt-magic"])
    with pytest.raises(UserError, match="sept.inter_negatives"):
        load_config(overrides=["sept.inter_negatives=hardest:0"])
    with pytest.raises(UserError, match="text.templates"):
        load_config(overrides=["text.templates=['no placeholder']"])


def test_parse_override_values():
    assert parse_override("train.lr=1e-3") == {"train": {"lr": 0.001}}
    assert parse_override("backbone.id=laion/clap-htsat-unfused") == {"backbone": {"id": "laion/clap-htsat-unfused"}}
    with pytest.raises(UserError):
        parse_override("epochs=3")


def test_round_trip_through_toml(tmp_path):
    from pipeline.config_loader import to_toml

    cfg = load_config(overrides=["sept.lam=0.25"])
    f = tmp_path / "resolved.toml"
    f.write_text(to_toml(cfg))
    assert load_config(f) == cfg


def test_the_moved_boundary_key_says_where_it_went():
    with pytest.raises(UserError) as err:
        load_config(None, ["neighbors.boundary_filter=false"])
    assert str(err.value) == ("--set neighbors.boundary_filter=false: key neighbors.boundary_filter moved to "
                              "sept.boundary_filter (the class boundary is now applied at tune time, against the "
                              "training classes only)")
    assert load_config(None, ["sept.boundary_filter=false"]).sept.boundary_filter is False
    assert load_config().sept.boundary_filter is True


def test_keys_that_change_only_execution_are_one_list_read_from_the_field_marks():
    from pipeline.config_loader import describe, non_identity_keys
    from pipeline.protocols.runner import _identity_config
    from pipeline.report.collect import _NOT_A_VARIANT

    keys = non_identity_keys()
    assert {"backbone.device", "backbone.text_batch_size", "backbone.audio_batch_size", "train.eval_batch_size",
            "train.log_to", "method.cocoop_chunk"} <= keys
    assert {"train.epochs", "train.lr", "method.n_ctx", "backbone.dtype", "train.amp", "sept.lam"}.isdisjoint(keys)
    assert keys == {f"{r.section}.{r.key}" for r in describe() if not r.identity}
    # what a resume compares: every key but these
    tree = _identity_config(load_config())
    kept = {f"{section}.{key}" for section, values in tree.items() for key in values}
    assert kept == {f"{r.section}.{r.key}" for r in describe()} - keys
    assert keys <= _NOT_A_VARIANT  # a report never labels a variant by them


def test_the_old_generation_key_says_what_replaced_it(tmp_path):
    """Issue 21: tune no longer derives the generation from [neighbors]; sept.generation asks the store."""
    with pytest.raises(UserError) as err:
        load_config(None, ["sept.generation_key='3f2a9c01d4e5b6a7'"])
    assert str(err.value) == ("--set sept.generation_key='3f2a9c01d4e5b6a7': key sept.generation_key moved to "
                              "sept.generation (\"auto\", a generation key or a name; tune reads the store and no "
                              "longer derives the key from [neighbors])")
    f = tmp_path / "old.toml"
    f.write_text('[sept]\ngeneration_key = ""\n')
    with pytest.raises(UserError, match=rf"^config file {f}|^{f}: key sept.generation_key moved to sept.generation"):
        load_config(f)
    cfg = load_config(None, ["sept.generation=qwen7b-v3", "sept.same_text_cos=0.9"])
    assert (cfg.sept.generation, cfg.sept.same_text_cos) == ("qwen7b-v3", 0.9)
    assert (load_config().sept.generation, load_config().sept.same_text_cos) == ("auto", 0.97)
    with pytest.raises(UserError, match=r"sept.same_text_cos: 1.5 is outside \[-1.0, 1.0\]"):
        load_config(None, ["sept.same_text_cos=1.5"])


def test_dataset_template_replaces_the_templates_with_the_datasets_one():
    from cache.errors import UserError
    from pipeline.config_loader import load_config, with_dataset_template
    from stages.data.specs import dataset_spec

    plain = load_config()
    assert with_dataset_template(plain, dataset_spec("esc50")) is plain  # off: nothing changes
    on = load_config(overrides=["text.dataset_template=true"])
    assert with_dataset_template(on, dataset_spec("gt-music-genre")).text.templates == ["This is {} music."]
    with pytest.raises(UserError) as err:
        with_dataset_template(on, dataset_spec("demo"))
    assert "demo.toml has no template" in str(err.value) and "text.dataset_template=false" in str(err.value)
