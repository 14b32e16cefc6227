"""Text cleaning of raw LLM answers: from whatever the model wrote to a list of candidate phrases.

Pure Python (no numpy, no torch), so it runs anywhere and is tested on adversarial answers: malformed
or truncated JSON, prose around the JSON, numbering and bullets, quotes, the class name echoed back,
repeats, empty lists, other scripts, 500-character rambles, the class name cut short or reordered.

Steps: `split_answer` finds the items (JSON first, salvaging what it can, else one item a line or
comma-separated), `normalize` canonicalises one item, `clean_answer` drops what is not a usable
neighbor and says why. Embedding-based filters come later (filters.py).
"""
from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field

_BULLET = re.compile(r"^\s*(?:[-*+\u2022\u2023\u25e6\u2043\u2219>]+|\(?\d{1,3}[.):\]]|\(?[a-zA-Z][.)]\s)\s*")
_QUOTES = "\"'`\u201c\u201d\u2018\u2019\u00ab\u00bb\u201e\u2039\u203a"
_TRAILING = ".,;:!?\u3002\u3001\u2026" + _QUOTES
_STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
_SPACE = re.compile(r"\s+")
_PROSE_LEAD = re.compile(r"^(?:sure|here (?:are|is)|okay|ok|certainly|of course|note|i hope|these are)\b", re.I)


@dataclass
class CleanResult:
    kept: list[str] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (raw item, reason)


def _json_items(text: str) -> list[str] | None:
    """Items of the first JSON object/array in `text`, or None when there is no parseable JSON."""
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch not in "{[":
            continue
        try:
            obj, _ = decoder.raw_decode(text, i)
        except ValueError:
            continue
        if isinstance(obj, dict):
            for key in ("neighbors", "phrases", "items", "answer"):
                if isinstance(obj.get(key), list):
                    obj = obj[key]
                    break
            else:
                lists = [v for v in obj.values() if isinstance(v, list)]
                obj = lists[0] if lists else None
        if isinstance(obj, list):
            return [x if isinstance(x, str) else "" for x in obj]  # numbers, nulls, objects: not phrases
    return None


def _salvage_strings(text: str) -> list[str] | None:
    """Quoted strings after `"neighbors"` in a truncated or malformed JSON answer."""
    start = text.find('"neighbors"')
    if start < 0 or "[" not in text[start:]:
        return None
    body = text[text.index("[", start) + 1:]
    items = []
    for m in _STRING.finditer(body):
        try:
            items.append(json.loads(f'"{m.group(1)}"'))
        except ValueError:
            items.append(m.group(1))
    return items


def split_answer(text: str) -> list[str]:
    """Raw items of one answer, in the order written."""
    text = text or ""
    if "{" in text or "[" in text:
        items = _json_items(text)
        if items is None:
            items = _salvage_strings(text)
        if items is not None:
            return items
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) == 1 and ("," in lines[0] or ";" in lines[0]):
        return [p for p in re.split(r"[,;]", lines[0]) if p.strip()]
    return lines


def normalize(item: str) -> str:
    """Canonical form: NFKC, no bullets/numbering, no wrapping quotes or trailing punctuation,
    underscores as spaces, single spaces, lower case."""
    s = unicodedata.normalize("NFKC", item)
    s = s.replace("_", " ").replace("\t", " ")
    s = _SPACE.sub(" ", s).strip()
    for _ in range(3):  # "1. \"dog bark\"." needs the steps in turn
        s = _BULLET.sub("", s).strip()
        s = s.strip(_QUOTES).strip()
        s = s.rstrip(_TRAILING).strip()
    return _SPACE.sub(" ", s).lower()


# Scripts that one language writes together count as one (Japanese mixes kanji, hiragana and katakana).
_SCRIPT_GROUPS = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "CJK": "CJK", "HANGUL": "HANGUL", "KATAKANA-HIRAGANA": "CJK"}


def _script(ch: str) -> str:
    first = unicodedata.name(ch, "UNKNOWN").split()[0]
    return _SCRIPT_GROUPS.get(first, first)


def main_script(s: str) -> str | None:
    """The script most letters of `s` are written in (LATIN, CYRILLIC, CJK, ...), None without letters."""
    counts: dict[str, int] = {}
    for c in s:
        if c.isalpha():
            counts[_script(c)] = counts.get(_script(c), 0) + 1
    return max(counts, key=counts.get) if counts else None


def _script_share(s: str, script: str) -> float:
    letters = [c for c in s if c.isalpha()]
    return sum(1 for c in letters if _script(c) == script) / len(letters) if letters else 0.0


def _words(s: str) -> list[str]:
    return [w for w in re.split(r"[\s\-/]+", s) if w]


def echo_reason(phrase: str, class_key: str) -> str | None:
    """Why a phrase only echoes its class name (None when it says something of its own).

    - "truncated class name": the class name cut short ("dog ba", or the first half of a long name);
    - "class name reordered": only the class name's own words, in another order, fewer of them or
      repeated ("bark dog", "bark", "dog bark dog" for "dog bark"). A paraphrase with any word of its
      own ("barking dog", "drops of water") is kept.
    """
    if len(phrase) < len(class_key) and class_key.startswith(phrase):
        return "truncated class name"
    words, own = _words(phrase), set(_words(class_key))
    if words and own and set(words) <= own:  # also repeats of them: "church bells church"
        return "class name reordered"
    return None


def drop_reason(phrase: str, class_key: str, seen: set[str], max_words: int, max_chars: int,
                same_script: bool) -> str | None:
    """Why a normalised phrase is not a usable neighbor, or None to keep it."""
    if not phrase:
        return "empty"
    if not any(c.isalpha() for c in phrase):
        return "not text"
    if len(phrase) > max_chars:
        return "too long"
    if len(phrase.split()) > max_words:
        return "too many words"
    if same_script and class_key not in phrase:
        script = main_script(class_key) or "LATIN"
        if _script_share(phrase, script) < 0.9:
            return "other script"
    if _PROSE_LEAD.match(phrase) or phrase.endswith(":"):
        return "prose"
    if phrase == class_key or phrase.replace("-", " ") == class_key.replace("-", " "):
        return "class name"
    if phrase in seen:
        return "duplicate"
    return echo_reason(phrase, class_key)


def clean_answer(text: str, class_name: str, *, max_words: int = 6, max_chars: int = 60,
                 same_script: bool = True, already: list[str] | tuple[str, ...] = ()) -> CleanResult:
    """Candidate neighbors of `class_name` from one raw answer, best (first written) first.

    `already` holds candidates kept from earlier rounds: repeats of those are dropped too.
    """
    res = CleanResult()
    class_key = normalize(class_name)
    seen = set(already)
    for raw in split_answer(text):
        phrase = normalize(raw)
        reason = drop_reason(phrase, class_key, seen, max_words, max_chars, same_script)
        if reason:
            res.dropped.append((raw, reason))
            continue
        seen.add(phrase)
        res.kept.append(phrase)
    return res
