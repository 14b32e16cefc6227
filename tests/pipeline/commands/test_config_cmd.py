"""`sept-pipeline config show|keys`, through the real entry point."""
import json
import subprocess
import sys

from pipeline.config_loader import load_config


def test_cli_bad_set_exits_2_with_one_line():
    r = subprocess.run([sys.executable, "-m", "pipeline.cli", "config", "show", "--set", "train.nope=1"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "train.nope" in r.stderr


def test_show_json_is_the_resolved_config():
    r = subprocess.run([sys.executable, "-m", "pipeline.cli", "config", "show", "--json", "--set", "sept.lam=0.25"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    expected = json.loads(json.dumps(load_config(None, ["sept.lam=0.25"]).to_dict(), default=str))
    assert shown == expected and shown["sept"]["lam"] == 0.25


def test_recipes_lists_every_recipe_with_its_source_and_variants():
    from pipeline.config_loader import recipe_names

    r = subprocess.run([sys.executable, "-m", "pipeline.cli", "config", "recipes", "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert sorted(rows) == recipe_names() and all(row["source"] for row in rows.values())
    assert rows["dept-original"]["variants"] == ["cocoop-dept", "kgcoop-dept"] and rows["palm"]["variants"] == []


# Keys added for the originals' training conditions (issue 19), each with the values its help must name.
NEW_KEYS = {"train.tower_mode": ("eval", "train", "train_bn_eval"), "train.eval_crop": ("fixed", "random"),
            "data.channels": ("mean", "concat"), "train.select": ("last", "lowest_train_loss"),
            "text.dataset_template": ("template",), "data.split_rule": ("sorted", "shuffle:<seed>"),
            "method.zebra_weight": ("zero-shot",), "method.zebra_entropy": ("entropy",),
            "method.zebra_templates": ("zero-shot",)}


def test_config_keys_lists_every_key_with_a_help_text_naming_its_choices():
    r = subprocess.run([sys.executable, "-m", "pipeline.cli", "config", "keys"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    blocks = {}
    for line in r.stdout.splitlines():
        if line and not line.startswith(" "):
            key = line.split(" = ", 1)[0]
            blocks[key] = ""
        else:
            blocks[key] += line.strip() + " "
    assert all(text.strip() for text in blocks.values()), [k for k, t in blocks.items() if not t.strip()]
    for key, choices in NEW_KEYS.items():
        assert key in blocks and all(c in blocks[key] for c in choices), key
