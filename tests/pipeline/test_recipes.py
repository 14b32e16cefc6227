"""Named recipes: each resolves to the numbers of the original files it cites, layered under --config/--set.

The numbers below are copied by hand from the originals' files (repository, commit, path, and what the file
says), as data: the test checks the recipe's resolved values against them, not against the recipe itself.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import pytest

from cache.errors import UserError
from pipeline.config_loader import (RECIPES_DIR, Config, build, load_config, read_toml, recipe_methods,
                                    recipe_names, recipe_record, to_toml)


class File(NamedTuple):
    repo: str
    commit: str
    path: str


PALM = "asif-hanif/palm", "6b069d2613156aa9aa731d724d8dfc163fe710a9"
COOP = "KaiyangZhou/CoOp", "ff61507c790454bce7c5052c3ac39e60772f1f89"
KGCOOP = "htyao89/KgCoOp", "c43ccc32c8739f64b165cfa205fcc6c0f5bb5b17"
DEPT = "Koorye/DePT", "d4ff41684bac42da30ebb6898496772dec3157f2"
SUBT = "jhyukjang/SubT", "08d3d21c004d41678b1760dc1b3bfc67bce517a0"
ZEBRA = "asif-hanif/zebra", "d428bc6a06e4b097fb4e4ddc7aa509e94c74746e"
DASSL = File("KaiyangZhou/Dassl.pytorch", "27eb2f4a09cafaafdd3b14030a3a96eb3a0c086b", "dassl/config/defaults.py")

PALM_MAIN, PALM_SH, PALM_COOP = File(*PALM, "main.py"), File(*PALM, "scripts/tut.sh"), File(*PALM, "palm/coop.py")
PALM_ARGS = File(*PALM, "utils/utils.py")
PALM_TRAINER, PALM_WRAPPER = File(*PALM, "utils/trainer.py"), File(*PALM, "pengi/wrapper.py")
PALM_ZEROSHOT = File(*PALM, "palm/zeroshot.py")
COOP_IMAGENET = File(*COOP, "configs/trainers/CoOp/vit_b16_ep50.yaml")
COOP_FEWSHOT, COOP_MD = File(*COOP, "configs/trainers/CoOp/vit_b16.yaml"), File(*COOP, "COOP.md")
COOP_B2N = File(*COOP, "configs/trainers/CoOp/vit_b16_ctxv1.yaml")
COCOOP_SCRIPT = File(*COOP, "scripts/cocoop/base2new_train.sh")
COOP_TRAIN = File(*COOP, "train.py")
COCOOP_CFG = File(*COOP, "configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml")
KG_SCRIPT = File(*KGCOOP, "KgCoOp/scripts/base2new_train.sh")
KG_CFG = File(*KGCOOP, "KgCoOp/configs/trainers/KgCoOp/vit_b16_ep100_ctxv1.yaml")
KG_README = File(*KGCOOP, "KgCoOp/README.md")
KG_TRAINER, KG_TRAIN = File(*KGCOOP, "KgCoOp/trainers/kgcoop.py"), File(*KGCOOP, "KgCoOp/train.py")
DEPT_COOP = File(*DEPT, "configs/trainers/ExtrasLinearProbeCoOp/vit_b16_ep10_bs4_lr35.yaml")
DEPT_KG = File(*DEPT, "configs/trainers/ExtrasLinearProbeKgCoOp/vit_b16_ep10_ctxv1_bs4_lr35.yaml")
DEPT_COCOOP = File(*DEPT, "configs/trainers/ExtrasLinearProbeCoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml")
DEPT_TRAIN = File(*DEPT, "train.py")
SUBT_RUN_ALL, SUBT_ESC = File(*SUBT, "scripts/run_all_datasets_subt.sh"), File(*SUBT, "scripts/esc50.sh")
SUBT_MAIN, SUBT_TRAINER = File(*SUBT, "main.py"), File(*SUBT, "utils/trainer.py")
SUBT_DATASET, SUBT_TEMPLATE = File(*SUBT, "utils/dataset.py"), File(*SUBT, "trainers/template.py")
SUBT_METHOD, SUBT_WRAPPER = File(*SUBT, "trainers/subt.py"), File(*SUBT, "pengi/wrapper.py")
ZEBRA_SH, ZEBRA_MAIN = File(*ZEBRA, "scripts/training/tut.sh"), File(*ZEBRA, "main.py")
ZEBRA_TRAINER, ZEBRA_COOP = File(*ZEBRA, "utils/trainer.py"), File(*ZEBRA, "methods/coop.py")
ZEBRA_SPLIT = File(*ZEBRA, "scripts/base-novel-classes/get_base_novel_classes.py")
ZEBRA_UTILS = File(*ZEBRA, "utils/utils.py")


class Fact(NamedTuple):
    key: str        # our config key
    value: object   # what it must resolve to
    file: File      # where the original says so
    says: str       # what that file says, copied


def dassl_optim(file: File, lr: float, epochs: int, batch: int) -> list[Fact]:
    """A Dassl config file's optimisation block (SGD, cosine, 1 constant warm-up epoch) plus Dassl's defaults."""
    return [Fact("train.lr", lr, file, f"OPTIM.LR: {lr}"), Fact("train.epochs", epochs, file, f"MAX_EPOCH: {epochs}"),
            Fact("train.batch_size", batch, file, f"DATALOADER.TRAIN_X.BATCH_SIZE: {batch}"),
            Fact("train.schedule", "cosine", file, 'LR_SCHEDULER: "cosine"'),
            Fact("train.warmup_epochs", 1, file, "WARMUP_EPOCH: 1 (WARMUP_TYPE: constant)"),
            Fact("train.warmup_lr", 1e-5, file, "WARMUP_CONS_LR: 1e-5"),
            Fact("train.weight_decay", 5e-4, DASSL, "_C.OPTIM.WEIGHT_DECAY = 5e-4"),
            Fact("train.momentum", 0.9, DASSL, "_C.OPTIM.MOMENTUM = 0.9"),
            Fact("train.logit_scale", "checkpoint", file, "logits scaled by clip_model.logit_scale.exp()")]


def dept_facts(amp_file: File, amp_says: str) -> list[Fact]:
    """What Koorye/DePT's train.py sets for every variant: the head's weight and lr multiple, the precision."""
    return [Fact("method.dept_weight", 0.7, DEPT_TRAIN, "cfg.TRAINER.LINEAR_PROBE.WEIGHT = 0.7"),
            Fact("method.dept_lr_mult", 6.5, DEPT_TRAIN, "cfg.OPTIM.LR_EXP = 6.5 (STAGED_LR, NEW_LAYERS linear_probe, film)"),
            Fact("train.amp", "fp16", amp_file, amp_says)]


# (recipe, method it is meant for) -> facts. "a sound of a" stands for the originals' "a photo of a".
FACTS: dict[tuple[str, str], list[Fact]] = {
    ("palm", "palm"): [
        Fact("train.momentum", 0.9, PALM_MAIN, "torch.optim.SGD(..., lr=args.lr, momentum=0.9)"),
        Fact("train.weight_decay", 0.0, PALM_MAIN, "no weight_decay argument"),
        Fact("train.schedule", "constant", PALM_MAIN, "no scheduler"),
        Fact("train.warmup_epochs", 0, PALM_MAIN, "no warm-up"),
        Fact("train.lr", 0.05, PALM_SH, "--lr 0.05"), Fact("train.epochs", 50, PALM_SH, "--n_epochs 50"),
        Fact("train.batch_size", 16, PALM_SH, "--batch_size 16"), Fact("data.shots", 16, PALM_SH, "--num_shots 16"),
        Fact("method.n_ctx", 16, PALM_ARGS, "--n_ctx default=16"),
        Fact("method.ctx_init", "", PALM_COOP, "torch.nn.init.normal_(ctx_vectors, std=0.02)"),
        Fact("train.logit_scale", 100.0, PALM_COOP, "logit_scale = 100.0"),
    ],
    ("palm-original", "palm"): [
        Fact("train.lr", 0.05, PALM_SH, "--lr 0.05"), Fact("train.epochs", 50, PALM_SH, "--n_epochs 50"),
        Fact("train.batch_size", 16, PALM_SH, "--batch_size 16"),
        Fact("train.momentum", 0.9, PALM_MAIN, "torch.optim.SGD(..., lr=args.lr, momentum=0.9)"),
        Fact("train.weight_decay", 0.0, PALM_MAIN, "no weight_decay argument"),
        Fact("train.schedule", "constant", PALM_MAIN, "no scheduler"),
        Fact("train.amp", "off", PALM_MAIN, "no autocast, no .half(): float32"),
        Fact("train.logit_scale", 100.0, PALM_COOP, "logit_scale = 100.0"),
        Fact("train.tower_mode", "train", PALM_TRAINER, "def run_epoch(...): model.train()"),
        Fact("train.random_crop", True, PALM_WRAPPER, "start_index = random.randrange(...) in load_audio_into_tensor"),
        Fact("train.eval_crop", "random", PALM_WRAPPER, "the same loader (random.randrange) for the test split"),
        Fact("data.channels", "concat", PALM_WRAPPER, "audio_time_series = audio_time_series.reshape(-1)"),
        Fact("method.n_ctx", 16, PALM_ARGS, "--n_ctx default=16"),
        Fact("method.ctx_init", "", PALM_COOP, "torch.nn.init.normal_(ctx_vectors, std=0.02)"),
    ],
    ("palm-original", "zeroshot"): [
        Fact("text.templates", ["The is a recording of  {}."], PALM_ZEROSHOT,
             'f"{prompt_prefix} {class_name}." with --prompt_prefix default "The is a recording of "'),
        Fact("train.eval_crop", "random", PALM_WRAPPER, "random.randrange at test"),
        Fact("data.channels", "concat", PALM_WRAPPER, "reshape(-1)"),
    ],
    ("sept-lab", "coop"): [
        Fact("train.lr", 0.0125, SUBT_RUN_ALL, "lr=0.0125"), Fact("data.shots", 16, SUBT_RUN_ALL, "num_shots=16"),
        Fact("train.epochs", 50, SUBT_ESC, "--n_epochs 50"), Fact("train.batch_size", 16, SUBT_ESC, "--batch_size 16"),
        Fact("train.momentum", 0.9, SUBT_MAIN, "torch.optim.SGD(..., lr=args.lr, momentum=0.9)"),
        Fact("train.weight_decay", 0.0, SUBT_MAIN, "no weight_decay argument"),
        Fact("train.schedule", "constant", SUBT_MAIN, "no scheduler"),
        Fact("train.amp", "off", SUBT_MAIN, "no autocast: float32"),
        Fact("data.base_fraction", 0.5, SUBT_DATASET, "self.classnames[:(len(self.classnames)+1)//2] (sorted)"),
        Fact("train.select", "lowest_train_loss", SUBT_TRAINER, "if train_loss < best_train_loss: evaluate, save"),
        Fact("train.tower_mode", "train_bn_eval", SUBT_TRAINER, "model.train(); model.audio_encoder...bn0.eval()"),
        Fact("text.dataset_template", True, SUBT_TEMPLATE, "DATASET_TEMPLATE = {...} one per dataset"),
        Fact("train.logit_scale", 100.0, SUBT_METHOD, "logit_scale = 100.0"),
        Fact("data.channels", "concat", SUBT_WRAPPER, "audio_time_series.reshape(-1)"),
        Fact("train.random_crop", True, SUBT_WRAPPER, "random.randrange(...)"),
        Fact("train.eval_crop", "random", SUBT_WRAPPER, "random.randrange(...) for the test split too"),
    ],
    ("zebra-original", "zebra"): [
        Fact("train.lr", 0.05, ZEBRA_SH, "--lr 0.05"), Fact("train.epochs", 50, ZEBRA_SH, "--n_epochs 50"),
        Fact("train.batch_size", 16, ZEBRA_SH, "--batch_size 16"), Fact("data.shots", 16, ZEBRA_SH, "--num_shots 16"),
        Fact("train.momentum", 0.9, ZEBRA_MAIN, "torch.optim.SGD(..., lr=args.lr, momentum=0.9)"),
        Fact("train.weight_decay", 0.0, ZEBRA_MAIN, "no weight_decay argument"),
        Fact("train.schedule", "constant", ZEBRA_MAIN, "no scheduler"),
        Fact("train.amp", "off", ZEBRA_MAIN, "no autocast: float32"),
        Fact("train.tower_mode", "train", ZEBRA_TRAINER, "run_epoch: model.train()"),
        Fact("data.split_rule", "shuffle:42", ZEBRA_SPLIT, "seed_everything(42); random.sample(...); C // 2"),
        Fact("method.n_ctx", 16, ZEBRA_COOP, "n_ctx = args.n_ctx # 16"),
        Fact("train.logit_scale", 100.0, ZEBRA_COOP, "logit_scale = 100.0"),
        Fact("method.zebra_weight", 0.5, ZEBRA_COOP, "logits = 0.5*logits + 0.5*self.zeroshot_logits(...)"),
        Fact("method.zebra_templates", ["The is a recording of  {}."], ZEBRA_COOP,
             'f"{self.args.prompt_prefix} {class_name}." with prompt_prefix "The is a recording of "'),
        Fact("method.zebra_entropy", 0.05, ZEBRA_UTILS, "total_loss = ce_loss - 0.05 * ent_loss"),
    ],
    ("zebra-original", "zeroshot"): [
        Fact("text.templates", ["The is a recording of  {}."], ZEBRA_COOP, "the zero-shot prompt of get_zeroshot_text_features"),
        Fact("data.split_rule", "shuffle:42", ZEBRA_SPLIT, "seed_everything(42)"),
    ],
    ("coop-imagenet", "coop"): [
        *dassl_optim(COOP_IMAGENET, 0.002, 50, 32),
        Fact("method.n_ctx", 16, COOP_TRAIN, "cfg.TRAINER.COOP.N_CTX = 16"),
        Fact("method.ctx_init", "", COOP_TRAIN, 'cfg.TRAINER.COOP.CTX_INIT = ""'),
        Fact("train.amp", "fp16", COOP_TRAIN, 'cfg.TRAINER.COOP.PREC = "fp16"'),
    ],
    ("coop-fewshot", "coop"): [
        *dassl_optim(COOP_FEWSHOT, 0.002, 200, 32),
        Fact("method.n_ctx", 16, COOP_MD, "16 shots: bash scripts/coop/main.sh caltech101 rn50 end 16 16 False"),
        Fact("method.ctx_init", "", COOP_TRAIN, 'cfg.TRAINER.COOP.CTX_INIT = ""'),
        Fact("data.shots", 16, COOP_MD, "main.sh ... 16 16 False (SHOTS=16)"),
        Fact("train.amp", "fp16", COOP_TRAIN, 'cfg.TRAINER.COOP.PREC = "fp16"'),
    ],
    ("coop-b2n", "coop"): [
        *dassl_optim(COOP_B2N, 0.002, 200, 32),
        Fact("method.n_ctx", 4, COOP_B2N, 'COOP.CTX_INIT: "a photo of a" (4 words: n_ctx = 4)'),
        Fact("method.ctx_init", "a sound of a", COOP_B2N, 'COOP.CTX_INIT: "a photo of a"'),
        Fact("train.amp", "fp16", COOP_TRAIN, 'cfg.TRAINER.COOP.PREC = "fp16"'),
    ],
    ("cocoop-original", "cocoop"): [
        *dassl_optim(COCOOP_CFG, 0.002, 10, 1),
        Fact("method.n_ctx", 4, COCOOP_CFG, "COCOOP.N_CTX: 4"),
        Fact("method.ctx_init", "a sound of a", COCOOP_CFG, 'COCOOP.CTX_INIT: "a photo of a"'),
        Fact("train.amp", "fp16", COCOOP_CFG, 'COCOOP.PREC: "fp16"'),
    ],
    ("kgcoop-original", "kgcoop"): [
        *dassl_optim(KG_CFG, 0.002, 100, 128),
        Fact("method.n_ctx", 4, KG_SCRIPT, "NCTX=4"),
        Fact("method.ctx_init", "a sound of a", KG_TRAINER, "CTX_INIT True: ctx_init = 'a photo of a'"),
        Fact("method.kg_weight", 8.0, KG_README, "bash base2new_train.sh stanford_cars 8.0 (WEIGHT=$2)"),
        Fact("method.kg_templates", ["a sound of a {}."], KG_TRAINER, "CUSTOM_TEMPLATES: one template per dataset"),
        Fact("train.amp", "fp16", KG_TRAIN, 'cfg.TRAINER.COOP.PREC = "fp16"'),
    ],
    ("dept-original", "dept"): [
        *dassl_optim(DEPT_COOP, 0.0035, 10, 4),
        Fact("method.n_ctx", 16, DEPT_TRAIN, "cfg.TRAINER.COOP.N_CTX = 16"),
        Fact("method.ctx_init", "", DEPT_TRAIN, 'cfg.TRAINER.COOP.CTX_INIT = ""'),
        *dept_facts(DEPT_TRAIN, 'cfg.TRAINER.COOP.PREC = "fp16"'),
    ],
    ("dept-original", "kgcoop-dept"): [
        *dassl_optim(DEPT_KG, 0.0035, 10, 4),
        Fact("method.n_ctx", 4, DEPT_KG, "COOP.N_CTX: 4"),
        Fact("method.ctx_init", "a sound of a", DEPT_KG, 'COOP.CTX_INIT: "a photo of a"'),
        Fact("method.kg_weight", 2.0, DEPT_KG, "COOP.W: 2.0"),
        *dept_facts(DEPT_TRAIN, 'cfg.TRAINER.COOP.PREC = "fp16"'),
    ],
    ("dept-original", "cocoop-dept"): [
        *dassl_optim(DEPT_COCOOP, 0.002, 10, 1),
        Fact("method.n_ctx", 4, DEPT_COCOOP, "COCOOP.N_CTX: 4"),
        Fact("method.ctx_init", "a sound of a", DEPT_COCOOP, 'COCOOP.CTX_INIT: "a photo of a"'),
        *dept_facts(DEPT_COCOOP, 'COCOOP.PREC: "fp16"'),
    ],
}


def resolved(cfg: Config, key: str):
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def test_every_shipped_recipe_has_its_facts_here():
    assert recipe_names() == sorted({r for r, _ in FACTS})
    assert "coop" not in recipe_names()  # CoOp's three schedules are named for what each reproduces


@pytest.mark.parametrize("recipe, method", sorted(FACTS))
def test_each_recipe_resolves_to_the_numbers_of_the_files_it_cites(recipe, method):
    cfg = load_config(recipe=recipe, method=method)
    assert cfg.recipe.name == recipe and cfg.method.name == method
    wrong = [f"{f.key} = {resolved(cfg, f.key)!r}, but {f.file.repo} {f.file.path} says {f.says}"
             for f in FACTS[recipe, method] if resolved(cfg, f.key) != f.value]
    assert not wrong
    text = (RECIPES_DIR / f"{recipe}.toml").read_text()
    record = recipe_record(recipe)
    for f in FACTS[recipe, method]:
        assert f.file.repo in text and f.file.path.split("/")[-1] in text, f"{recipe} does not cite {f.file.path}"
        if f.file.repo != DASSL.repo:
            assert f.file.repo in record["source"]
    assert record["name"] == recipe and len(record["file_sha256"]) > 8


@pytest.mark.parametrize("name", recipe_names())
def test_a_recipe_sets_how_the_original_trained_never_the_experiment(name):
    raw = read_toml(RECIPES_DIR / f"{name}.toml")
    tables = [raw, *raw.get("for_method", {}).values()]
    for table in tables:
        assert set(table) - {"source", "for_method"} <= {"train", "method", "data", "text"}
        assert "name" not in table.get("method", {}) and not {"seed", "shots", "fold"} & set(table.get("data", {}))
    # a recipe with variants per method names each one it was written for
    assert set(recipe_methods(name)) <= {m for r, m in FACTS if r == name}


def test_for_method_tables_apply_to_their_method_only_and_sit_under_config_and_set(tmp_path):
    plain = load_config(recipe="dept-original", method="dept")
    kg = load_config(recipe="dept-original", method="kgcoop-dept")
    assert (plain.method.kg_weight, kg.method.kg_weight) == (8.0, 2.0)  # the dataclass default vs DePT's W
    # the method may also come from --set method.name or the config file, as `config show` gets it
    assert load_config(overrides=['method.name="kgcoop-dept"'], recipe="dept-original").method.kg_weight == 2.0
    f = tmp_path / "exp.toml"
    f.write_text('[method]\nname = "cocoop-dept"\nn_ctx = 8\n')
    cfg = load_config(f, ["train.epochs=3"], recipe="dept-original")
    assert (cfg.train.batch_size, cfg.train.lr, cfg.method.n_ctx, cfg.train.epochs) == (1, 0.002, 8, 3)


@pytest.mark.parametrize("text, needle", [
    ('source = "x"\n[sept]\nlam = 1.0\n', "[sept]: a recipe sets only train, method, data, text"),
    ('source = "x"\n[method]\nname = "coop"\n', "method.name: a recipe never sets it"),
    ('source = "x"\n[for_method.adamw.train]\nlr = 1.0\n', "[for_method] adamw: not a method name"),
    ('source = "x"\n[for_method.coop.data]\nseed = 3\n', "for_method.coop.data.seed: a recipe never sets it"),
])
def test_a_recipe_file_that_sets_what_it_may_not_is_one_line(monkeypatch, tmp_path, text, needle):
    import pipeline.config_loader as loader

    (tmp_path / "bad.toml").write_text(text)
    monkeypatch.setattr(loader, "RECIPES_DIR", tmp_path)
    with pytest.raises(UserError) as err:
        loader._recipe_layer("bad", "coop")
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_the_dataclass_defaults_are_palm_and_the_only_defaults():
    palm = load_config(recipe="palm")
    bare = build({})  # the dataclass defaults alone
    assert load_config() == palm == bare  # no other defaults layer (a defaults file) changes anything
    assert not [f for f in FACTS["palm", "palm"] if resolved(bare, f.key) != f.value]
    assert bare.recipe.name == "palm" and bare.sept.neighbors_per_step == "all" and bare.sept.cocoop_bias == "none"
    # One source of defaults: no defaults file is shipped beside the recipes for anything to drift from.
    assert not (RECIPES_DIR.parent / "default.toml").exists()


def test_recipe_sits_under_the_config_file_and_set(tmp_path):
    f = tmp_path / "exp.toml"
    f.write_text('[train]\nlr = 0.01\nepochs = 7\n')
    cfg = load_config(f, ["train.epochs=3"], recipe="coop-imagenet")
    assert cfg.recipe.name == "coop-imagenet" and cfg.train.schedule == "cosine" and cfg.train.batch_size == 32
    assert cfg.train.lr == 0.01 and cfg.train.epochs == 3  # --config over the recipe, --set over both

    # Which recipe: --recipe, else --set recipe.name, else the config file's [recipe] name, else palm.
    g = tmp_path / "pick.toml"
    g.write_text('[recipe]\nname = "cocoop-original"\n[train]\nepochs = 2\n')
    assert load_config(g).recipe.name == "cocoop-original" and load_config(g).train.batch_size == 1
    assert load_config(g).train.epochs == 2
    assert load_config(g, ['recipe.name="coop-fewshot"']).train.batch_size == 32
    assert load_config(g, ['recipe.name="coop-fewshot"'], recipe="palm").recipe.name == "palm"


def test_resolved_config_reloads_to_the_same_config(tmp_path):
    for recipe, method in (("kgcoop-original", "kgcoop"), ("dept-original", "kgcoop-dept")):
        cfg = load_config(overrides=["train.epochs=4"], recipe=recipe, method=method)
        f = tmp_path / "config.toml"
        f.write_text(to_toml(cfg))
        assert load_config(f) == cfg


@pytest.mark.parametrize("args, needle", [
    ({"recipe": "adam-fast"}, f"recipe 'adam-fast': unknown (known: {', '.join(recipe_names())};"),
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
