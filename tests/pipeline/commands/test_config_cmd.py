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
