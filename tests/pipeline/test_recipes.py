"""Named recipes: each resolves to the values its file states (and cites), layered under --config/--set."""
from __future__ import annotations

import dataclasses

import pytest

from cache.errors import UserError
from pipeline.config_loader import RECIPES_DIR, Config, build, load_config, read_toml, recipe_names, recipe_record, to_toml

DASSL = {"momentum": 0.9, "weight_decay": 5e-4, "schedule": "cosine", "warmup_epochs": 1, "warmup_lr": 1e-5,
         "logit_scale": "checkpoint"}
# What each recipe is stated to be (docs/method.md, configs/recipes/*.toml), written out independently here.
STATED = {
    "palm": ({"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0, "schedule": "constant", "warmup_epochs": 0,
              "epochs": 50, "batch_size": 16, "logit_scale": 100.0},
             {"n_ctx": 16, "ctx_init": "", "kg_templates": []}),
    "coop": ({**DASSL, "lr": 0.002, "epochs": 50, "batch_size": 32}, {"n_ctx": 16, "ctx_init": ""}),
    "cocoop-original": ({**DASSL, "lr": 0.002, "epochs": 10, "batch_size": 1},
                        {"n_ctx": 4, "ctx_init": "a sound of a"}),
    "kgcoop-original": ({**DASSL, "lr": 0.002, "epochs": 100, "batch_size": 128},
                        {"ctx_init": "a sound of a", "kg_weight": 8.0, "kg_templates": ["a sound of a {}."]}),
}
SOURCES = {"palm": "asif-hanif/palm", "coop": "KaiyangZhou/CoOp", "cocoop-original": "KaiyangZhou/CoOp",
           "kgcoop-original": "htyao89/KgCoOp"}


def test_the_shipped_recipes_are_the_four_named_ones():
    assert recipe_names() == sorted(STATED)


@pytest.mark.parametrize("name", sorted(STATED))
def test_each_recipe_resolves_to_its_stated_values_and_cites_its_source(name):
    cfg = load_config(recipe=name)
    train, method = STATED[name]
    assert cfg.recipe.name == name
    assert {k: getattr(cfg.train, k) for k in train} == train
    assert {k: getattr(cfg.method, k) for k in method} == method
    record = recipe_record(name)
    assert record["name"] == name and SOURCES[name] in record["source"] and len(record["file_sha256"]) > 8
    assert SOURCES[name] in (RECIPES_DIR / f"{name}.toml").read_text()
    # A recipe sets training keys only: never the method, the data or SEPT.
    assert set(read_toml(RECIPES_DIR / f"{name}.toml")) <= {"source", "train", "method"}
    assert "name" not in read_toml(RECIPES_DIR / f"{name}.toml").get("method", {})


def test_the_dataclass_defaults_are_palm_and_the_only_defaults():
    palm = load_config(recipe="palm")
    bare = build({})  # the dataclass defaults alone
    assert load_config() == palm == bare  # no other defaults layer (a defaults file) changes anything
    train, method = STATED["palm"]
    assert {k: getattr(bare.train, k) for k in train} == train
    assert {k: getattr(bare.method, k) for k in method} == method
    assert bare.recipe.name == "palm" and bare.sept.neighbors_per_step == "all" and bare.sept.cocoop_bias == "none"
    # One source of defaults: no defaults file is shipped beside the recipes for anything to drift from.
    assert not (RECIPES_DIR.parent / "default.toml").exists()


def test_recipe_sits_under_the_config_file_and_set(tmp_path):
    f = tmp_path / "exp.toml"
    f.write_text('[train]\nlr = 0.01\nepochs = 7\n')
    cfg = load_config(f, ["train.epochs=3"], recipe="coop")
    assert cfg.recipe.name == "coop" and cfg.train.schedule == "cosine" and cfg.train.batch_size == 32
    assert cfg.train.lr == 0.01 and cfg.train.epochs == 3  # --config over the recipe, --set over both

    # Which recipe: --recipe, else --set recipe.name, else the config file's [recipe] name, else palm.
    g = tmp_path / "pick.toml"
    g.write_text('[recipe]\nname = "cocoop-original"\n[train]\nepochs = 2\n')
    assert load_config(g).recipe.name == "cocoop-original" and load_config(g).train.batch_size == 1
    assert load_config(g).train.epochs == 2
    assert load_config(g, ['recipe.name="coop"']).train.batch_size == 32
    assert load_config(g, ['recipe.name="coop"'], recipe="palm").recipe.name == "palm"


def test_resolved_config_reloads_to_the_same_config(tmp_path):
    cfg = load_config(overrides=["train.epochs=4"], recipe="kgcoop-original")
    f = tmp_path / "config.toml"
    f.write_text(to_toml(cfg))
    assert load_config(f) == cfg


@pytest.mark.parametrize("args, needle", [
    ({"recipe": "adam-fast"}, "recipe 'adam-fast': unknown (known: cocoop-original, coop, kgcoop-original, palm"),
    ({"overrides": ["train.logit_scale=learned"]}, "train.logit_scale: 'learned' is not 'checkpoint' or a number > 0"),
    ({"overrides": ["train.logit_scale=-3"]}, "train.logit_scale: -3.0 is not 'checkpoint' or a number > 0"),
    ({"overrides": ["sept.neighbors_per_step=0"]}, "sept.neighbors_per_step: 0 is not 'all' or a whole number"),
    ({"overrides": ["sept.neighbors_per_step=2.5"]}, "key sept.neighbors_per_step: expected int or str, got float"),
    ({"overrides": ["method.kg_templates=['no placeholder']"]}, "method.kg_templates: 'no placeholder' must contain"),
])
def test_bad_recipe_and_new_keys_are_one_line_errors(args, needle):
    with pytest.raises(UserError) as err:
        load_config(**args)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_logit_scale_takes_checkpoint_or_a_number():
    assert load_config(overrides=["train.logit_scale=checkpoint"]).train.logit_scale == "checkpoint"
    assert load_config(overrides=["train.logit_scale=20"]).train.logit_scale == 20.0
    assert dataclasses.replace(Config().train, logit_scale=50.0).logit_scale == 50.0
