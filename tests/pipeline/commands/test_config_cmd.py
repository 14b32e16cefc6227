"""`sept-pipeline config show|keys`, through the real entry point."""
import json

from cli_kit import run_in_process, run_subprocess
from pipeline.config_loader import load_config, non_identity_keys


def test_cli_bad_set_exits_2_with_one_line():
    r = run_subprocess("config", "show", "--set", "train.nope=1")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "train.nope" in r.stderr


def test_show_json_is_the_resolved_config():
    r = run_subprocess("config", "show", "--json", "--set", "sept.lam=0.25")
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    expected = json.loads(json.dumps(load_config(None, ["sept.lam=0.25"]).to_dict(), default=str))
    assert shown == expected and shown["sept"]["lam"] == 0.25


def test_in_this_process_and_as_a_program_the_cli_answers_alike():
    for args in (["config", "show", "--json", "--set", "sept.lam=0.25"], ["config", "show", "--set", "train.nope=1"]):
        here, there = run_in_process(*args), run_subprocess(*args)
        assert (here.code, here.stdout, here.stderr) == (there.returncode, there.stdout, there.stderr)


def test_keys_marks_the_keys_that_change_only_how_a_run_executes():
    code, out, _ = run_in_process("config", "keys")
    assert code == 0
    rows = dict(zip(out.splitlines()[::2], out.splitlines()[1::2]))  # "section.key = default" -> "    help"
    note = "(changes how a run executes, not its results)"
    marked = {head.split(" = ")[0] for head, help_line in rows.items() if help_line.endswith(note)}
    assert marked == non_identity_keys() and "train.log_to" in marked and "train.lr" not in marked


def test_recipes_lists_every_recipe_with_its_source_and_variants():
    from pipeline.config_loader import recipe_names

    r = run_subprocess("config", "recipes", "--json")
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
    r = run_subprocess("config", "keys")
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
