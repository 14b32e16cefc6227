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
