"""Prompt templates for neighbor generation: a versioned text file whose hash keys the store.

File format (plain text, UTF-8). Either a single block, which becomes the user message, or sections:

    # comment lines start with '#'
    [system]
    You name sounds ...
    [example: dog bark]
    barking dog
    canine barking
    [user]
    Sound: {classname}
    List {count} other short names for this sound. {format}

`[example: CLASS]` sections become worked examples: a user turn (the [user] text with CLASS in place
of {classname}) and an assistant turn with the listed neighbors, written in the output format asked
for (one a line, or `{"neighbors": [...]}`), so a small model sees the exact shape we want back.

`[set: NAME]` starts another set of worked examples (the examples before the first one form the first
set). Each set makes its own conversation (the same system and user text, that set's examples), and
stage one asks every class once per set and pools the answers: a small model's greedy answer is precise
but short (it loops on two or three phrases), and which phrases it finds depends on the examples it saw,
so several sets give more on-topic phrases than one answer, without sampling (docs/benchmarks.md).
Placeholders: {classname} (required in [user]), {count} (phrases asked), {format} (the format rule),
{task} (the dataset's task, e.g. "music genre classification": tells the LLM what kind of sound a name is;
never another class's name, so a class's answer still depends on that class alone).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from cache.errors import UserError
from cache.fingerprint import sha256_bytes, sha256_json, short

PLACEHOLDERS = ("classname", "count", "format", "task")
DEFAULT_TASK = "audio classification"  # what {task} says when no dataset task is known
FORMAT_RULES = {
    "lines": "Write one phrase per line, with no numbering and nothing else.",
    "json": 'Answer only with JSON of the form {"neighbors": ["...", "..."]}.',
}
_SECTION = re.compile(r"^\[(system|user|example:\s*(?P<cls>[^\]]+)|set:\s*(?P<set>[^\]]+))\]\s*$")
_FIELD = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class PromptTemplate:
    path: str
    version: str  # the file's stem, e.g. "neighbors_v1"
    file_hash: str  # sha256 of the file's bytes
    system: str
    user: str
    example_sets: tuple[tuple[str, tuple[tuple[str, tuple[str, ...]], ...]], ...]  # (set name, ((class, neighbors), ...))

    @property
    def examples(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The worked examples of the first set: (class, neighbors)."""
        return self.example_sets[0][1]

    @property
    def sets(self) -> int:
        """How many conversations each class gets (one per example set)."""
        return len(self.example_sets)

    @property
    def uses_task(self) -> bool:
        return "{task}" in self.system or "{task}" in self.user

    def task_text(self, task: str) -> str:
        """What {task} becomes: the given task, else DEFAULT_TASK ('' when the template has no {task})."""
        return (task.strip() or DEFAULT_TASK) if self.uses_task else ""

    def prompt_hash(self, output_format: str, count: int, task: str = "") -> str:
        """What keys the store: the template file, the answer format, the number of phrases asked and, in a
        template with {task}, the task text (a template without it keys exactly as before)."""
        parts = {"file": self.file_hash, "format": output_format, "count": int(count)}
        if self.uses_task:
            parts["task"] = self.task_text(task)
        return short(sha256_json(parts))

    def _fill(self, text: str, output_format: str, count: int, task: str) -> str:
        return (text.replace("{count}", str(count)).replace("{format}", FORMAT_RULES[output_format])
                .replace("{task}", self.task_text(task)))

    def _user(self, classname: str, output_format: str, count: int, task: str = "") -> str:
        return self._fill(self.user.replace("{classname}", classname), output_format, count, task)

    def messages(self, classname: str, output_format: str, count: int, task: str = "",
                 example_set: int = 0) -> list[dict]:
        """The chat conversation for one class: system, the worked examples of one set, then the question."""
        msgs: list[dict] = []
        if self.system:
            msgs.append({"role": "system", "content": self._fill(self.system, output_format, count, task)})
        for ex_class, ex_neighbors in self.example_sets[example_set][1]:
            msgs.append({"role": "user", "content": self._user(ex_class, output_format, count, task)})
            msgs.append({"role": "assistant", "content": format_answer(ex_neighbors, output_format)})
        msgs.append({"role": "user", "content": self._user(classname, output_format, count, task)})
        return msgs

    def conversations(self, classname: str, output_format: str, count: int, task: str = "") -> list[list[dict]]:
        """One conversation per example set, the first set's first."""
        return [self.messages(classname, output_format, count, task, i) for i in range(self.sets)]


def format_answer(neighbors, output_format: str) -> str:
    if output_format == "json":
        return json.dumps({"neighbors": list(neighbors)})
    return "\n".join(neighbors)


def resolve_path(path: str | Path, repo_root: Path | None = None) -> Path:
    """A prompt path as given, else relative to `repo_root`: the folder holding the shipped configs/
    (stages/shipped.py), where the default configs/prompts/neighbors_v1.txt lives."""
    p = Path(path).expanduser()
    if p.is_file() or p.is_absolute() or repo_root is None:
        return p
    q = repo_root / p
    return q if q.is_file() else p


def load(path: str | Path, repo_root: Path | None = None) -> PromptTemplate:
    p = resolve_path(path, repo_root)
    if not p.is_file():
        raise UserError(f"prompt template {path}: not found (config key neighbors.prompt; expected a text file "
                        f"such as configs/prompts/neighbors_v1.txt)")
    data = p.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"prompt template {p}: not UTF-8 text") from None
    return parse(text, str(p), sha256_bytes(data))


def parse(text: str, where: str = "<prompt>", file_hash: str | None = None) -> PromptTemplate:
    sections: dict[str, list[str]] = {}
    sets: list[tuple[str, list[tuple[str, list[str]]]]] = [("", [])]  # (name, examples); the first set unnamed
    current: list[str] | None = None
    saw_section = False
    loose: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = _SECTION.match(line.strip())
        if m:
            saw_section = True
            if m.group("set"):
                if sets[-1][0] or sets[-1][1]:  # examples before the first [set: ...] form the first set
                    sets.append((m.group("set").strip(), []))
                else:
                    sets[-1] = (m.group("set").strip(), [])
                current = None
                if any(name == sets[-1][0] for name, _ in sets[:-1]):
                    raise UserError(f"prompt template {where}: [set: {sets[-1][0]}] appears twice")
            elif m.group("cls"):
                sets[-1][1].append((m.group("cls").strip(), []))
                current = sets[-1][1][-1][1]
            else:
                name = m.group(1)
                if name in sections:
                    raise UserError(f"prompt template {where}: section [{name}] appears twice")
                sections[name] = []
                current = sections[name]
            continue
        if current is None and saw_section and line.strip():
            raise UserError(f"prompt template {where}: text {line.strip()[:40]!r} directly under a [set: ...] line; "
                            f"a set holds [example: CLASS] sections")
        (current if current is not None else loose).append(line)
    if not saw_section:
        sections["user"] = loose
    elif any(s.strip() for s in loose):
        raise UserError(f"prompt template {where}: text before the first section; put it under [system] or [user]")
    if "user" not in sections:
        raise UserError(f"prompt template {where}: no [user] section (it holds the question with {{classname}})")
    user = "\n".join(sections["user"]).strip()
    system = "\n".join(sections.get("system", [])).strip()
    if "{classname}" not in user:
        raise UserError(f"prompt template {where}: the user text has no {{classname}} placeholder "
                        f"(it marks where each class name goes)")
    for part, label in ((user, "[user]"), (system, "[system]")):
        for name in _FIELD.findall(part):
            if name not in PLACEHOLDERS or (label == "[system]" and name == "classname"):
                allowed = ", ".join("{%s}" % n for n in PLACEHOLDERS)
                raise UserError(f"prompt template {where}: unknown placeholder {{{name}}} in {label} "
                                f"(allowed: {allowed}; {{classname}} only in [user])")
    example_sets = []
    for name, examples in sets:
        exs = []
        for cls, lines in examples:
            items = tuple(s.strip() for s in lines if s.strip())
            if not items:
                raise UserError(f"prompt template {where}: [example: {cls}] lists no neighbors (one a line)")
            exs.append((cls, items))
        if not exs and len(sets) > 1:
            raise UserError(f"prompt template {where}: [set: {name or '(first)'}] has no [example: CLASS] section")
        example_sets.append((name, tuple(exs)))
    version = Path(where).stem if where != "<prompt>" else "inline"
    return PromptTemplate(where, version, file_hash or sha256_bytes(text.encode()), system, user,
                          tuple(example_sets))
