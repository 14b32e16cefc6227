"""Prompt templates: parsing, rendering into chat messages, hashing, and bad templates."""
import json

import pytest

from cache.errors import UserError
from stages.neighbors import prompt
from stages.shipped import package_root

TEMPLATE = """# a comment that is hashed but not sent
[system]
You name sounds.
[example: violin]
fiddle
bowed strings
[user]
Sound: {classname}
Give {count} names. {format}
"""


def test_default_prompt_file_loads_and_has_examples():
    t = prompt.load("configs/prompts/neighbors_v1.txt", package_root())
    assert t.version == "neighbors_v1"
    assert len(t.examples) >= 2 and all(len(n) >= 5 for _, n in t.examples)
    msgs = t.messages("dog", "lines", 16)
    assert msgs[0]["role"] == "system" and msgs[-1]["role"] == "user" and "dog" in msgs[-1]["content"]


def test_messages_with_worked_examples_in_each_format():
    t = prompt.parse(TEMPLATE, "p.txt")
    lines = t.messages("rain", "lines", 12)
    assert [m["role"] for m in lines] == ["system", "user", "assistant", "user"]
    assert lines[1]["content"].startswith("Sound: violin\nGive 12 names.")
    assert lines[2]["content"] == "fiddle\nbowed strings"
    assert lines[3]["content"].startswith("Sound: rain") and prompt.FORMAT_RULES["lines"] in lines[3]["content"]
    js = t.messages("rain", "json", 12)
    assert json.loads(js[2]["content"]) == {"neighbors": ["fiddle", "bowed strings"]}
    assert prompt.FORMAT_RULES["json"] in js[3]["content"]


def test_plain_file_is_the_user_message():
    t = prompt.parse("List neighbors of {classname}.", "plain.txt")
    assert t.messages("rain", "lines", 3) == [{"role": "user", "content": "List neighbors of rain."}]


def test_hash_depends_on_file_format_and_count():
    a = prompt.parse(TEMPLATE, "p.txt")
    b = prompt.parse(TEMPLATE.replace("fiddle", "fiddle tune"), "p.txt")
    assert a.prompt_hash("lines", 16) != b.prompt_hash("lines", 16)
    assert a.prompt_hash("lines", 16) != a.prompt_hash("json", 16)
    assert a.prompt_hash("lines", 16) != a.prompt_hash("lines", 12)
    assert a.prompt_hash("lines", 16) == prompt.parse(TEMPLATE, "elsewhere.txt").prompt_hash("lines", 16)


def test_template_without_classname_is_rejected(tmp_path):
    f = tmp_path / "bad.txt"
    f.write_text("[user]\nList some sounds.\n")
    with pytest.raises(UserError, match=r"bad.txt.*\{classname\}"):
        prompt.load(f)


@pytest.mark.parametrize("text, match", [
    ("[system]\nhi\n", "no \\[user\\] section"),
    ("[user]\n{classname} {bogus}\n", "unknown placeholder \\{bogus\\}"),
    ("[system]\n{classname}\n[user]\n{classname}\n", "unknown placeholder"),
    ("[example: x]\n[user]\n{classname}\n", "lists no neighbors"),
    ("loose text\n[user]\n{classname}\n", "text before the first section"),
    ("[user]\n{classname}\n[user]\n{classname}\n", "appears twice"),
])
def test_malformed_templates(text, match):
    with pytest.raises(UserError, match=match):
        prompt.parse(text, "t.txt")


def test_missing_prompt_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        prompt.load(tmp_path / "nope.txt")


SETS = """[system]
You name sounds.
[user]
Sound: {classname}
Give {count} names. {format}
[set: strings]
[example: violin]
fiddle
bowed strings
[set: brass]
[example: trumpet]
bugle
[example: tuba]
low brass
"""


def test_example_sets_give_one_conversation_each_with_that_sets_examples_only():
    t = prompt.parse(SETS, "sets.txt")
    assert t.sets == 2 and [name for name, _ in t.example_sets] == ["strings", "brass"]
    a, b = t.conversations("rain", "lines", 12)
    assert [m["role"] for m in a] == ["system", "user", "assistant", "user"]
    assert [m["role"] for m in b] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert a[2]["content"] == "fiddle\nbowed strings"
    assert b[1]["content"].startswith("Sound: trumpet") and b[4]["content"] == "low brass"
    assert a[0] == b[0] and a[-1] == b[-1] and a[-1]["content"].startswith("Sound: rain")
    assert t.messages("rain", "lines", 12) == a and t.examples == t.example_sets[0][1]


def test_a_file_without_sets_is_one_set_and_renders_as_before():
    t = prompt.parse(TEMPLATE, "p.txt")
    assert t.sets == 1 and t.conversations("rain", "lines", 12) == [t.messages("rain", "lines", 12)]
    # examples before the first [set: ...] form the first set
    mixed = prompt.parse(TEMPLATE + "[set: more]\n[example: tuba]\nlow brass\n", "m.txt")
    assert mixed.sets == 2 and mixed.example_sets[0][1] == t.examples


def test_the_shipped_default_prompt_has_five_sets_of_examples_outside_the_benchmarks():
    from stages.data.specs import dataset_classnames
    from stages.neighbors.config import NeighborsConfig

    t = prompt.load(NeighborsConfig().prompt, package_root())
    assert t.version == "neighbors_v3" and t.sets == 5
    assert all(len(ex) == 3 and all(len(n) == 8 for _, n in ex) for _, ex in t.example_sets)
    benchmark = {c.lower() for d in ("esc50", "urbansound8k", "tut2017", "vocalsound", "gt-music-genre")
                 for c in dataset_classnames(d)}
    assert not {c for _, ex in t.example_sets for c, _ in ex} & benchmark


@pytest.mark.parametrize("text, match", [
    (SETS.replace("[example: violin]\nfiddle\nbowed strings\n", ""), r"\[set: strings\] has no \[example"),
    (SETS.replace("[set: brass]", "[set: strings]"), r"\[set: strings\] appears twice"),
    (SETS.replace("[set: brass]\n", "[set: brass]\nstray line\n"), "directly under a \\[set"),
])
def test_malformed_example_sets(text, match):
    with pytest.raises(UserError, match=match):
        prompt.parse(text, "t.txt")
