"""Which stored generation a run means: `sept.generation = "auto" | KEY | NAME`, answered by the store alone.

Stage two never recomputes stage one's identity (that needs the LLM's files); it asks the store:
- a NAME (given by `generate-neighbors --name` or `neighbors import --name`, kept in the manifest) names one key;
- a KEY is taken as it is;
- "auto" is the one generation under which every class asked for is stored and every text it needs (the class
  names and their phrases) has a frozen embedding for this encoder under every template. Several such
  generations: a one-line error lists them (LLM, prompt, date, names) and asks for a key or a name. None: the
  error says which classes the closest generation lacks, and the command that would add them.

Names: a letter, then letters, digits or . _ + - (at most 64), never "auto", never 16 hex digits (the shape of
a key). One name names one key; a key may have several names.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from cache.errors import UserError

AUTO = "auto"
NAME_RULE = "a letter, then letters, digits or . _ + - (at most 64 characters), not 'auto'"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9._+-]{0,63}")
_KEY_SHAPE = re.compile(r"[0-9a-f]{16}")


def check_name(name: str, where: str = "--name") -> str:
    """`name` if it can name a generation, else a UserError saying the rule."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name == AUTO or _KEY_SHAPE.fullmatch(name):
        raise UserError(f"{where} {name!r}: a generation name is {NAME_RULE}, and not 16 hex digits (a key's shape)")
    return name


@dataclass(frozen=True)
class Resolved:
    """The generation a run reads, and how it was chosen."""

    key: str
    names: tuple[str, ...]  # every name of that key
    how: str  # "auto" | "key" | "name"
    asked: str  # the value of sept.generation

    @property
    def name(self) -> str:
        """The name asked for, else the key's only name, else ''."""
        if self.how == "name":
            return self.asked
        return self.names[0] if len(self.names) == 1 else ""

    def record(self) -> dict:
        return {"generation": self.asked, "generation_key": self.key, "generation_name": self.name,
                "generation_names": list(self.names), "generation_chosen_by": self.how}


@dataclass
class Coverage:
    """How far one stored generation goes for a class list and an encoder."""

    row: dict  # NeighborStore.generation_keys() row
    names: list[str]
    missing_classes: list[str] = field(default_factory=list)
    unembedded_classes: list[str] = field(default_factory=list)  # stored, but some text lacks an embedding

    @property
    def usable(self) -> bool:
        return not self.missing_classes and not self.unembedded_classes


def describe(row: dict, names: Sequence[str] = ()) -> str:
    """One generation in a line: key, names, LLM and engine, prompt, date of its last class."""
    label = f" (name {', '.join(repr(n) for n in names)})" if names else ""
    return (f"{row['generation_key']}{label}: llm {row['llm_id']} via {row['engine']}, prompt {row['prompt_version']} "
            f"{row['prompt_hash']}, N={row['num_neighbors']}, {row['classes']} classes, {row['last_created_at'][:10]}")


def _preview(items: Sequence[str], n: int = 5) -> str:
    shown = ", ".join(repr(x) for x in items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


def coverage(store, row: dict, names: list[str], classnames: list[str], templates: list[str],
             encoder: str) -> Coverage:
    """Which of `classnames` generation `row` lacks, and which it stores without every embedding."""
    cov = Coverage(row, names)
    stored = set(row["class_names"])
    cov.missing_classes = [c for c in classnames if c not in stored]
    if cov.missing_classes:
        return cov
    phrases = store.get_phrases(classnames, row["generation_key"])
    texts = list(dict.fromkeys(classnames + [p for c in classnames for p in phrases[c]]))
    lacking = set(store.missing_embeddings(texts, templates, encoder))
    cov.unembedded_classes = [c for c in classnames if c in lacking or any(p in lacking for p in phrases[c])]
    return cov


def resolve(store, asked: str, classnames: Iterable[str], templates: Sequence[str], encoder: str,
            fix: Callable[[str | None], str] | None = None, where: str = "sept.generation") -> Resolved:
    """The generation `sept.generation = asked` means for these classes, encoder and templates.

    A key or a name is returned as found (the caller checks that it holds what the run needs, and says what
    is missing); "auto" is resolved here and always returns a generation that holds all of it. `fix(None)`
    is the command that would add missing classes, `fix(key)` the one that would embed generation `key`'s
    texts for this encoder: the end of the "none qualifies" error. Without classes, "auto" is the store's only
    generation. `where` names the setting in errors (sept.generation, --generation, --like).
    """
    classnames, templates = list(classnames), list(templates)
    manifest = store.manifest()
    asked = asked.strip()
    if asked == AUTO and not classnames:
        rows = store.generation_keys()
        if len(rows) == 1:
            return Resolved(rows[0]["generation_key"], tuple(manifest.names_of(rows[0]["generation_key"])), "auto",
                            asked)
        listing = "; ".join(describe(r, manifest.names_of(r["generation_key"])) for r in rows)
        raise UserError(f"{where} auto: the store {store.root} holds {len(rows)} generations"
                        + (f" ({listing}); give a key or a name" if rows else ""))
    if asked != AUTO:
        key = manifest.key_of_name(asked)
        if key is not None:
            return Resolved(key, tuple(manifest.names_of(key)), "name", asked)
        rows = {r["generation_key"] for r in store.generation_keys()}
        if asked in rows:
            return Resolved(asked, tuple(manifest.names_of(asked)), "key", asked)
        known = sorted(e.name for e in manifest.names)
        raise UserError(f"{where} {asked!r}: neither a name nor a generation key in the store {store.root} "
                        f"(names: {_preview(known) or 'none'}; keys: {_preview(sorted(rows)) or 'none'}; "
                        f"see `sept-pipeline neighbors ls`)")

    covers = [coverage(store, row, manifest.names_of(row["generation_key"]), classnames, templates, encoder)
              for row in store.generation_keys()]
    usable = [c for c in covers if c.usable]
    if len(usable) == 1:
        key = usable[0].row["generation_key"]
        return Resolved(key, tuple(usable[0].names), "auto", asked)
    if usable:
        listing = "; ".join(describe(c.row, c.names) for c in usable)
        raise UserError(f"{where} = 'auto': {len(usable)} generations in {store.root} store all "
                        f"{len(classnames)} classes for encoder {encoder}: {listing}; choose one with "
                        f"--set sept.generation=KEY or =NAME")
    def tail(key: str | None) -> str:
        return f"; fill the gap with {fix(key)}" if fix else ""

    if not covers:
        raise UserError(f"{where} = 'auto': the neighbor store {store.root} holds no generation{tail(None)}")
    full = [c for c in covers if not c.missing_classes]
    if full:
        best = full[0]
        key = best.row["generation_key"]
        raise UserError(f"{where} = 'auto': generation {describe(best.row, best.names)} stores all "
                        f"{len(classnames)} classes, but texts of {len(best.unembedded_classes)} of them "
                        f"({_preview(best.unembedded_classes)}) have no frozen embedding for encoder {encoder} under "
                        f"all {len(templates)} templates{tail(key)}")
    best = min(covers, key=lambda c: len(c.missing_classes))
    raise UserError(f"{where} = 'auto': no generation in {store.root} stores all {len(classnames)} classes; "
                    f"the closest, {describe(best.row, best.names)}, lacks {len(best.missing_classes)}: "
                    f"{_preview(best.missing_classes)}{tail(None)}")


def classes_lacking(store, classes: list[str], key: str, templates: list[str], encoder: str) -> list[str]:
    """Classes without phrases under `key`, or whose name or phrases lack an embedding for `encoder` under
    every template: what `tune` would refuse to start without (a class stored with no phrase is not lacking:
    stage one tried and the LLM gave nothing usable)."""
    present = store.classes_present(classes, key)
    phrases = store.get_phrases([c for c in classes if c in present], key)
    texts = list(dict.fromkeys([c for c in present] + [p for c in present for p in phrases[c]]))
    lacking = set(store.missing_embeddings(texts, templates, encoder)) if texts else set()
    return [c for c in classes
            if c not in present or c in lacking or any(p in lacking for p in phrases.get(c, ()))]
