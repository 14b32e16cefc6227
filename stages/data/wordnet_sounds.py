"""WordNet-Sounds: a text dataset with real semantics, built from WordNet 3.0's noun database.

    build_wordnet_sounds(Path("data"))  ->  data/wordnet-sounds/{<class>/<offset>.txt, train.csv, test.csv,
                                                                 README.md, LICENSE, manifest.json}

It stands in for an audio dataset where no pretrained audio-language model can be had: a class is a noun
synset of a thing that makes sounds (configs/datasets/wordnet-sounds.toml, [prepare]: picked by data.noun
offset), an item is one of its transitive hyponyms written as text. The rule (rule_version 2):

- Class name: the synset's most common lemma (highest tag count in WordNet's cntlist.rev; ties: the lemma
  WordNet lists first), underscores as spaces; made unambiguous: a lemma that is also a lemma of another
  chosen class's synset or of one of the class's own hyponyms is passed over for the next one (kept only when
  every lemma is such). The config spells the names out; the build checks them against this rule.

- Items of a class: every transitive `~` hyponym of its synset. A synset under two chosen classes goes to the
  more specific one (the class whose own synset lies under every other such class); if no class is more
  specific than all the others (two unrelated parents), it goes to neither. A chosen class's own synset is
  never an item of another class.
- Text of an item: "<lemma>: <gloss>" with the lemma's underscores as spaces and the first of the synset's
  lemmas that survives masking. Masking removes the class's words by the five rules of
  stages/data/class_words.py (rule version 1 had only the first): 1 lemma, every lemma of the class synset
  and its plurals as whole words; 2 substring, every token containing a one-word lemma (fireboat, goldfinch,
  bulldog, machinery); 3 derivation, WordNet's derivationally related forms (`+` pointers) and their
  inflections as whole tokens (sing, sang for song); 4 head, every token containing the head noun of a
  multi-word lemma (appliance, insect, bird, vehicle, instrument); 5 modifier, every token containing another
  word of a multi-word lemma (musical, stringed, motor). Masking, not dropping, for every rule: rules 2-5
  change 586 of the 3780 candidates, up to half of a class (oscine 49%, cutter 48%, homopterous insect 44%);
  dropping them would take whole families (the -finches, -boats, -ships) and leave song, homopterous insect,
  motor vehicle, music and cetacean under min_items.
  An item left with fewer than two words of 3+ letters ("young" for duckling) is dropped.
- Texts identical across classes are dropped from all of them (and kept once within a class).
- A class keeps at most max_items items: the first in sha256("<seed>:<offset>") order. It must keep at least
  min_items, else the build stops (the config is wrong, not the data).
- Split per class (split_rule): "item", items in sha256("<seed>:split:<class>:<offset>") order, the first
  round(n * test_fraction) to test, the rest to train; "subtree", a hyponym and its item descendants go to
  one side together (item_groups: sub-trees broken at the top where one would not fit in the test share),
  groups in the seeded hash order of their first offset, to test while they fit.
- What each rule changed and dropped is counted in manifest.json ("rules", printed by `datasets prepare`), with
  each class's masked words ("class_words") and how many test items name a training item of their class
  through the gloss ("split").

The folder is PALM's layout with text items: train.csv / test.csv (columns path,classname; path = the item
file relative to the folder), so the existing readers, few-shot draws and base/new split apply unchanged.
Deterministic: everything is sorted, hashed with a fixed seed, and no time stamp is written, so two builds
from the same package are byte-identical. Building happens in a temp folder renamed into place.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from cache.atomic import atomic_dir
from cache.errors import UserError
from cache.fingerprint import sha256_json
from cache.lock import file_lock
from stages.data import class_words as cw
from stages.data import wordnet as wn
from stages.data.sound_packages import package_version
from stages.data.specs import dataset_spec
from stages.fields import opt

NAME = "wordnet-sounds"
FORMAT_VERSION = 1
RULE_VERSION = 2
SPLIT_RULES = ("item", "subtree")
MIN_WORDS = 2  # an item keeps at least this many words of 3+ letters after masking, else it is dropped
LICENSE_HEADER = "WordNet 3.0 Copyright 2006 by Princeton University.  All rights reserved."


@dataclass(frozen=True)
class WordnetRecipe:
    """The [prepare] table of configs/datasets/wordnet-sounds.toml: what decides the dataset's content."""

    synsets: tuple[tuple[str, str], ...] = opt((), "class name -> data.noun offset (8 digits) of its synset.")
    wordnet_version: str = opt("3.0", "WordNet version the offsets belong to (only 3.0 is read).")
    rule_version: int = opt(RULE_VERSION, "Version of the selection rule; bump it when the rule or the synset list "
                                          "changes (this code builds rule version 2 only).")
    min_items: int = opt(32, "Fewest items a class may keep; fewer stops the build.")
    max_items: int = opt(60, "Most items a class keeps (the first in sha256(seed:offset) order).")
    test_fraction: float = opt(1 / 3, "Share of each class's items in the test split.")
    seed: int = opt(0, "Seed of the item cap and the split hashes.")
    split_rule: str = opt("item", "How each class's items are split: item (each item by its own seeded hash) | "
                                  "subtree (a hyponym and its item descendants on one side).")
    path: str = opt("", "The config file it came from (for messages).")

    def __post_init__(self) -> None:
        where = f"dataset config {self.path}: [prepare]"
        if self.rule_version != RULE_VERSION:
            raise UserError(f"{where} rule_version {self.rule_version!r}: this version of sept-pipeline builds rule "
                            f"version {RULE_VERSION} only (stages/data/wordnet_sounds.py); set rule_version = "
                            f"{RULE_VERSION}")
        if self.split_rule not in SPLIT_RULES:
            raise UserError(f"{where} split_rule {self.split_rule!r}: expected one of {', '.join(SPLIT_RULES)}")
        if self.wordnet_version != "3.0":
            raise UserError(f"{where} wordnet_version {self.wordnet_version!r}: only '3.0' (wordnet-base) is read")
        if not self.synsets:
            raise UserError(f"{where}.synsets is empty (expected class name = \"<8-digit data.noun offset>\")")
        for name, offset in self.synsets:
            if not (isinstance(offset, str) and len(offset) == 8 and offset.isdigit()):
                raise UserError(f"{where}.synsets {name!r} = {offset!r}: expected an 8-digit data.noun offset string")
        offsets = [o for _, o in self.synsets]
        if len(set(offsets)) != len(offsets):
            raise UserError(f"{where}.synsets: an offset is listed twice (each class needs its own synset)")
        if not 1 <= self.min_items <= self.max_items:
            raise UserError(f"{where}: need 1 <= min_items <= max_items, got {self.min_items} and {self.max_items}")
        if not 0 < self.test_fraction < 1:
            raise UserError(f"{where} test_fraction {self.test_fraction!r}: expected a number in (0, 1)")

    @property
    def classes(self) -> list[str]:
        return sorted(name for name, _ in self.synsets)

    def as_dict(self) -> dict:
        return {"wordnet_version": self.wordnet_version, "rule_version": self.rule_version,
                "min_items": self.min_items, "max_items": self.max_items,
                "test_fraction": round(self.test_fraction, 9), "seed": self.seed, "split_rule": self.split_rule,
                "synsets": dict(self.synsets)}


_RECIPE_KEYS = {"builder", "wordnet_version", "rule_version", "min_items", "max_items", "test_fraction", "seed",
                "split_rule", "synsets"}


def read_prepare(config: str | os.PathLike | None, builder: str, keys: set[str]) -> tuple:
    """(spec, [prepare] table, where-prefix for messages) of the dataset config `config` (default: the shipped
    config of `builder`), checked for unknown keys and for its builder."""
    spec = dataset_spec(config or builder)
    with open(spec.path, "rb") as fh:
        raw = tomllib.load(fh).get("prepare", {})
    where = f"dataset config {spec.path}: [prepare]"
    unknown = sorted(set(raw) - keys)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(keys))})")
    if raw.get("builder") != builder:
        raise UserError(f"{where} builder {raw.get('builder')!r}: expected {builder!r}")
    return spec, raw, where


def load_recipe(config: str | os.PathLike | None = None) -> WordnetRecipe:
    """The recipe of the shipped wordnet-sounds config (or of the dataset TOML at `config`)."""
    spec, raw, where = read_prepare(config, NAME, _RECIPE_KEYS)
    synsets = raw.get("synsets", {})
    if not isinstance(synsets, dict):
        raise UserError(f"{where}.synsets must be a table of class name = \"offset\"")
    kw = {k: raw[k] for k in ("wordnet_version", "rule_version", "min_items", "max_items", "test_fraction", "seed",
                              "split_rule") if k in raw}
    recipe = WordnetRecipe(synsets=tuple(sorted(synsets.items())), path=str(spec.path), **kw)
    if recipe.classes != sorted(spec.classes):
        raise UserError(f"{where}.synsets names {recipe.classes} but key classes lists {sorted(spec.classes)}: "
                        f"they must be the same classes")
    return recipe


# --- masking: no item may name its class (stages/data/class_words.py) ------------------------------------

def irregular_plurals(wordnet_dir: Path = wn.WORDNET_DIR) -> dict[str, list[str]]:
    """singular -> WordNet's irregular plurals (noun.exc lines are 'plural singular')."""
    return wn.read_exceptions("n", wordnet_dir)


def mask_pattern(lemmas: tuple[str, ...], irregular: dict[str, list[str]]) -> re.Pattern:
    """Rule 1 (lemma) alone: every lemma of a synset and its plurals as whole words, case-insensitively."""
    forms: set[str] = set()
    for lemma in lemmas:
        forms |= cw.plural_forms(" ".join(lemma.replace("_", " ").lower().split()), irregular)
    return cw.phrase_pattern(forms)


def item_text(lemmas: tuple[str, ...], gloss: str, masker: cw.Masker) -> tuple[str, tuple[str, ...]]:
    """("<lemma>: <gloss>", the rules that removed something) with the class's words removed; the lemma is
    the first one that survives masking (none when all of them are the class's words: then the masked gloss
    alone). The rules counted are those that fired on the gloss or on a lemma up to the one shown."""
    text, fired = masker.mask(gloss)
    rules = set(fired)
    for lemma in lemmas:
        shown, fired = masker.mask(lemma.replace("_", " "))
        rules.update(fired)
        if re.search(r"[^\W_]", shown):
            text = f"{shown}: {text}"
            break
    return text, tuple(r for r in cw.RULES if r in rules)


# --- names and selection -----------------------------------------------------------------------------------------

def _order(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def class_name(nouns: dict[str, wn.Synset], offset: str, chosen: set[str], counts: dict[str, int]) -> str:
    """The name the rule in this module's docstring gives the class of synset `offset`."""
    synset = nouns[offset]
    taken = {l.lower() for o in chosen - {offset} for l in nouns[o].lemmas}
    taken |= {l.lower() for o in wn.hyponym_closure(nouns, offset) for l in nouns[o].lemmas}
    ranked = sorted(range(len(synset.lemmas)), key=lambda i: (-counts.get(wn.sense_key(synset, i), 0), i))
    free = [i for i in ranked if synset.lemmas[i].lower() not in taken]
    return synset.lemmas[(free or ranked)[0]].replace("_", " ")


def check_names(nouns: dict[str, wn.Synset], recipe: WordnetRecipe, counts: dict[str, int]) -> None:
    chosen = {o for _, o in recipe.synsets}
    for name, offset in recipe.synsets:
        if offset in nouns and class_name(nouns, offset, chosen, counts) != name:
            raise UserError(f"dataset config {recipe.path}: [prepare.synsets] {name!r} = {offset!r}: the naming rule "
                            f"gives {class_name(nouns, offset, chosen, counts)!r} (the synset's most common lemma "
                            f"not shared with another class or a hyponym); rename the class")


def owned_hyponyms(nouns: dict[str, wn.Synset], recipe: WordnetRecipe, counts: dict[str, int]) -> dict[str, list[str]]:
    """class name -> the offsets of its items before masking (sorted): every transitive hyponym, a synset under
    several classes given to the most specific one (or to none), class synsets never items. Checks the
    recipe's offsets and names first."""
    missing = [f"{n} = {o!r}" for n, o in recipe.synsets if o not in nouns]
    if missing:
        raise UserError(f"dataset config {recipe.path}: [prepare.synsets] {missing[0]}: no such noun synset in "
                        f"WordNet {recipe.wordnet_version}'s data.noun")
    check_names(nouns, recipe, counts)
    roots = dict(recipe.synsets)
    closure = {name: wn.hyponym_closure(nouns, o) for name, o in roots.items()}
    root_offsets = set(roots.values())
    owners: dict[str, list[str]] = {}
    for name, members in closure.items():
        for o in members - root_offsets:
            owners.setdefault(o, []).append(name)
    out: dict[str, list[str]] = {name: [] for name in sorted(roots)}
    for o, names in owners.items():
        # the most specific owner: its own synset lies under every other owner's synset
        specific = [a for a in names if all(b == a or roots[a] in closure[b] for b in names)]
        if len(specific) == 1:
            out[specific[0]].append(o)
    return {name: sorted(members) for name, members in out.items()}


def class_maskers(nouns: dict[str, wn.Synset], recipe: WordnetRecipe,
                  wordnet_dir: Path = wn.WORDNET_DIR) -> dict[str, cw.Masker]:
    """class name -> the masker of its words (rules 1-5 of stages/data/class_words.py)."""
    noun_lemmas = {" ".join(l.replace("_", " ").lower().split()) for s in nouns.values() for l in s.lemmas}
    exceptions: dict[str, dict[str, list[str]]] = {}
    return {name: cw.Masker(cw.class_words(nouns[o], noun_lemmas, wordnet_dir, exceptions))
            for name, o in recipe.synsets}


@dataclass
class Selection:
    """The items of every class and what the rule did on the way (`counts`, written into manifest.json)."""

    items: dict[str, list[tuple[str, str]]]  # class -> [(offset, text)] sorted by offset
    counts: dict
    words: dict[str, dict] = field(default_factory=dict)  # class -> its masked words (ClassWords.as_dict)


def keep_items(texts: dict[str, dict[str, tuple[str, tuple[str, ...]]]], recipe, where: str,
               key=lambda text: text.lower(), hint: str = "pick a broader synset") -> Selection:
    """From class -> {offset: (masked text, rules fired)}: drop texts left with fewer than two words of three
    letters or more ("young", "a fast": masking took the rest), texts whose key is shared across classes (from
    all of them) or within a class (kept once), cap each class at max_items (the first in sha256(seed:offset)
    order), require min_items. Counts per rule are over the kept
    items ("changed": the rule removed something from the item), the drops over all candidates."""
    classes_of_key: dict[str, set[str]] = {}
    for name, members in texts.items():
        for text, _ in members.values():
            classes_of_key.setdefault(key(text), set()).add(name)
    dropped = {"too_short": 0, "shared_across_classes": 0, "duplicate_in_class": 0, "over_max_items": 0}
    items: dict[str, list[tuple[str, str]]] = {}
    changed = {r: 0 for r in cw.RULES}
    for name in sorted(texts):
        seen: set[str] = set()
        kept = []
        for o in sorted(texts[name]):
            text, _ = texts[name][o]
            k = key(text)
            if len(re.findall(r"[^\W\d_]{3,}", text)) < MIN_WORDS:
                dropped["too_short"] += 1
            elif len(classes_of_key[k]) > 1:
                dropped["shared_across_classes"] += 1
            elif k in seen:
                dropped["duplicate_in_class"] += 1
            else:
                seen.add(k)
                kept.append(o)
        capped = sorted(kept, key=lambda o: _order(f"{recipe.seed}:{o}"))[: recipe.max_items]
        dropped["over_max_items"] += len(kept) - len(capped)
        if len(capped) < recipe.min_items:
            raise UserError(f"{where}: class {name!r} keeps {len(capped)} items, fewer than min_items = "
                            f"{recipe.min_items}; {hint}")
        items[name] = [(o, texts[name][o][0]) for o in sorted(capped)]
        for o in capped:
            for r in texts[name][o][1]:
                changed[r] += 1
    candidates = {r: sum(r in rules for members in texts.values() for _, rules in members.values())
                  for r in cw.RULES}
    beyond = sum(any(r != "lemma" for r in texts[name][o][1]) for name in items for o, _ in items[name])
    counts = {"candidates": sum(len(v) for v in texts.values()), "items": sum(len(v) for v in items.values()),
              "changed_per_rule": {r: {"candidates": candidates[r], "items": changed[r]} for r in cw.RULES},
              "items_changed_beyond_rule_1": beyond, "dropped": dropped}
    return Selection(items, counts)


def select(nouns: dict[str, wn.Synset], recipe: WordnetRecipe, counts: dict[str, int],
           wordnet_dir: Path = wn.WORDNET_DIR) -> Selection:
    """The items of every class by the rule in this module's docstring, with the counts of each rule."""
    pool = owned_hyponyms(nouns, recipe, counts)
    maskers = class_maskers(nouns, recipe, wordnet_dir)
    texts = {name: {o: item_text(nouns[o].lemmas, nouns[o].gloss, maskers[name]) for o in members}
             for name, members in pool.items()}
    selection = keep_items(texts, recipe, f"dataset config {recipe.path}")
    selection.words = {name: m.words.as_dict() for name, m in sorted(maskers.items())}
    return selection


def select_items(nouns: dict[str, wn.Synset], recipe: WordnetRecipe, irregular: dict[str, list[str]],
                 counts: dict[str, int], wordnet_dir: Path = wn.WORDNET_DIR) -> dict[str, list[tuple[str, str]]]:
    """class name -> [(offset, text)] sorted by offset (`irregular` is read from wordnet_dir's noun.exc;
    kept for callers of rule version 1)."""
    return select(nouns, recipe, counts, wordnet_dir).items


# --- the split --------------------------------------------------------------------------------------------

def item_groups(nouns: dict[str, wn.Synset], root: str, members: list[str], most: int) -> list[list[str]]:
    """Sub-trees of a class's items: an item goes with its nearest item ancestors (walking up `@` links
    through synsets that are not items, below the class synset), so a hyponym and its descendants form one
    group. A group of more than `most` items is broken at its top (its items without an item ancestor become
    groups of one) until every group holds at most `most`. Groups sorted by their smallest offset."""
    inside = set(members)

    def item_parents(o: str) -> set[str]:
        found, stack, seen = set(), list(nouns[o].hypernyms), set()
        while stack:
            h = stack.pop()
            if h in seen or h == root or h not in nouns:
                continue
            seen.add(h)
            if h in inside:
                found.add(h)
            else:
                stack.extend(nouns[h].hypernyms)
        return found

    parents = {o: item_parents(o) for o in members}

    def components(nodes: set[str]) -> list[set[str]]:
        link = {o: set() for o in nodes}
        for o in nodes:
            for p in parents[o] & nodes:
                link[o].add(p)
                link[p].add(o)
        out, left = [], set(nodes)
        while left:
            stack, comp = [min(left)], set()
            while stack:
                o = stack.pop()
                if o not in comp:
                    comp.add(o)
                    stack.extend(link[o] - comp)
            left -= comp
            out.append(comp)
        return out

    groups, todo = [], components(inside)
    while todo:
        comp = todo.pop()
        if len(comp) <= most:
            groups.append(sorted(comp))
            continue
        tops = {o for o in comp if not parents[o] & comp}
        groups.extend([o] for o in sorted(tops))
        todo.extend(components(comp - tops))
    return sorted(groups)


def split_items(items: dict[str, list[tuple[str, str]]], recipe: WordnetRecipe,
                nouns: dict[str, wn.Synset] | None = None) -> dict[str, str]:
    """'<class>/<offset>' -> 'train' | 'test', per class. split_rule "item": items in the seeded hash order,
    the first round(n * test_fraction) to test. "subtree": the groups of `item_groups` (at most that many items
    each) in the seeded hash order of their smallest offset, a group to test while it fits in
    round(n * test_fraction), else to train."""
    side: dict[str, str] = {}
    roots = dict(recipe.synsets)
    for name, members in items.items():
        n_test = round(len(members) * recipe.test_fraction)
        if recipe.split_rule == "subtree":
            groups = item_groups(nouns, roots[name], [o for o, _ in members], max(1, n_test))
            taken = 0
            for group in sorted(groups, key=lambda g: _order(f"{recipe.seed}:split:{name}:{g[0]}")):
                fits = taken + len(group) <= n_test
                taken += len(group) if fits else 0
                for o in group:
                    side[f"{name}/{o}"] = "test" if fits else "train"
        else:
            order = sorted(members, key=lambda it: _order(f"{recipe.seed}:split:{name}:{it[0]}"))
            for i, (o, _) in enumerate(order):
                side[f"{name}/{o}"] = "test" if i < n_test else "train"
    return side


# --- the folder -----------------------------------------------------------------------------------------

def class_folder(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _csv(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def read_notice(path: Path) -> str:
    """A package's copyright file, or "" when it is gone (the licence text then says where to find it)."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _license_text(copyright_file: Path) -> str:
    text = read_notice(copyright_file)
    m = re.search(r"^License: WordNet3\.0\n((?: .*\n?)+)", text, re.MULTILINE)
    if m:
        body = "\n".join("" if ln.strip() == "." else ln[1:] for ln in m.group(1).splitlines())
    else:  # the package's copyright file is gone: state the notice the licence requires
        body = (f"{LICENSE_HEADER}\n\nSee https://wordnet.princeton.edu/license-and-commercial-use for the "
                "WordNet 3.0 licence, whose notice and disclaimer must accompany every copy.")
    return ("The item texts of this dataset are derived from WordNet 3.0 (Princeton University), as shipped\n"
            "by the Debian package wordnet-base. They are redistributed under the WordNet 3.0 licence:\n\n"
            + body.rstrip() + "\n")


def rule_lines(counts: dict, split_rule: str) -> list[str]:
    """What the masking rules and the drops did, one line each (README, `datasets prepare`)."""
    per, d = counts["changed_per_rule"], counts["dropped"]
    lines = [f"{counts['items']} items kept of {counts['candidates']} candidate hyponyms."]
    if "no_entry" in d:  # GCIDE-Sounds: hyponyms without a usable definition
        lines.append(f"hyponyms left out: {d['no_entry']} without a GCIDE entry, {d['no_usable_definition']} without "
                     f"a usable definition (only WordNet's glosses, pointers, other parts of speech), "
                     f"{d['no_matching_sense']} whose definitions match neither a WordNet ancestor nor the gloss")
    lines += [f"rule {i} ({r}): changed {per[r]['items']} kept items ({per[r]['candidates']} candidates)"
              for i, r in enumerate(cw.RULES, 1)]
    lines.append(f"items changed by rules 2-5 (what rule version 1 left): {counts['items_changed_beyond_rule_1']}")
    lines.append(f"dropped: {d['too_short']} with fewer than {MIN_WORDS} words of 3+ letters left after masking, "
                 f"{d['shared_across_classes']} with a text shared across classes, {d['duplicate_in_class']} "
                 f"duplicates within a class, {d['over_max_items']} over max_items")
    lines.append(f"split rule: {split_rule}")
    return lines


def _readme(items: dict[str, list[tuple[str, str]]], side: dict[str, str], recipe: WordnetRecipe,
            version: str, counts: dict) -> str:
    lines = ["# WordNet-Sounds", "",
             "Built by `sept-pipeline datasets prepare wordnet-sounds` from WordNet 3.0's noun database "
             f"(Debian package {wn.PACKAGE} {version}), rule version {recipe.rule_version}.",
             "A text proxy of a sound-classification task: each class is a WordNet noun synset of a thing that "
             "makes sounds; each item (`<class>/<offset>.txt`, UTF-8, one line) is one of its hyponyms as "
             "\"lemma: gloss\" with the class's own words removed. train.csv / test.csv (columns path,classname) "
             "give the split. The selection rule: stages/data/wordnet_sounds.py and the dataset's config.", "",
             *MASKING_NOTE, "", *[f"- {line}" for line in rule_lines(counts, recipe.split_rule)], "",
             "WordNet 3.0 Copyright 2006 by Princeton University; licence and disclaimer in LICENSE.", "",
             *class_table(items, side, dict(recipe.synsets))]
    return "\n".join(lines) + "\n"


MASKING_NOTE = [" ".join([  # one README paragraph
    "The class's words are masked (removed from the text), never the item dropped for them; an item left with",
    "fewer than two words of 3+ letters is dropped. Rules (stages/data/class_words.py): 1 lemma: every lemma",
    "of the class synset and its plurals as whole words; 2 substring: every token containing a one-word lemma",
    "(fireboat, goldfinch, bulldog, machinery); 3 derivation: WordNet's derivationally related forms of the",
    "lemmas (`+` pointers; song -> sing, cutter -> cut) and their inflections, as whole tokens; 4 head: every",
    "token containing the head noun of a multi-word lemma (appliance, insect, bird, vehicle, instrument);",
    "5 modifier: every token containing another word of a multi-word lemma (musical, stringed, motor, hand).",
    "manifest.json lists each class's words.",
])]


def class_table(items: dict[str, list[tuple[str, str]]], side: dict[str, str], roots: dict[str, str]) -> list[str]:
    lines = ["| class | synset | train | test |", "|:--|:--|--:|--:|"]
    for name, members in items.items():
        n_test = sum(side[f"{name}/{o}"] == "test" for o, _ in members)
        lines.append(f"| {name} | {roots[name]} | {len(members) - n_test} | {n_test} |")
    return lines


def dataset_files(items: dict[str, list[tuple[str, str]]], side: dict[str, str], readme: str, license_text: str,
                  manifest: dict) -> dict[str, bytes]:
    """Relative path -> content of every file of a text dataset folder in PALM's layout: one
    `<class>/<offset>.txt` per item, train.csv / test.csv, README.md, LICENSE and manifest.json (`manifest`
    plus classes, counts and every other file's sha256)."""
    files: dict[str, bytes] = {}
    rows: dict[str, list[list[str]]] = {"train": [], "test": []}
    for name, members in items.items():
        for o, text in members:
            rel = f"{class_folder(name)}/{o}.txt"
            files[rel] = (text + "\n").encode("utf-8")
            rows[side[f"{name}/{o}"]].append([rel, name])
    for split in ("train", "test"):
        files[f"{split}.csv"] = _csv(["path", "classname"], sorted(rows[split])).encode("utf-8")
    files["README.md"] = readme.encode("utf-8")
    files["LICENSE"] = license_text.encode("utf-8")
    manifest = {**manifest, "classes": list(items), "num_train": len(rows["train"]), "num_test": len(rows["test"]),
                "files": {rel: hashlib.sha256(data).hexdigest() for rel, data in sorted(files.items())}}
    files["manifest.json"] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
    return files


def _write(folder: Path, files: dict[str, bytes]) -> None:
    for rel, data in sorted(files.items()):
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _is_complete(folder: Path, files: dict[str, bytes]) -> bool:
    """The folder holds exactly these files with these contents (then a rebuild would change nothing)."""
    try:
        present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        return present == set(files) and all((folder / rel).read_bytes() == data for rel, data in files.items())
    except OSError:
        return False


def publish(root: str | os.PathLike, folder_name: str, files: dict[str, bytes], force: bool, what: str) -> dict:
    """Write `files` as `<root>/<folder_name>` (built in a temp folder renamed into place) or reuse an identical
    copy. An existing folder is swapped out, only once the new one is complete, with `force` or when it is an
    untouched older build of the same dataset (its manifest's name, every file with its manifest's sha256:
    rule version 1 of WordNet-Sounds becomes rule version 2 by itself); anything else there is an error.
    Returns the summary of manifest.json with "path", "reused" and "replaced" (the older build's recipe)."""
    manifest = json.loads(files["manifest.json"])
    root = Path(root).expanduser()
    target = root / folder_name
    root.mkdir(parents=True, exist_ok=True)
    replaced = None
    with file_lock(root / f".{folder_name}.lock"):
        if target.exists() and not force:
            if _is_complete(target, files):
                return _summary(target, manifest, reused=True)
            replaced = _older_build(target, manifest["name"])
            if replaced is None:
                raise UserError(f"{target}: exists but is not this {what} build (files differ); remove it or "
                                f"pass --force to rebuild it")
        if target.exists():  # build beside it, then swap, so a failed build keeps the old one
            staging = Path(tempfile.mkdtemp(prefix=f".{folder_name}.", suffix=".new", dir=root))
            try:
                _write(staging, files)
                old = target.with_name(f".{folder_name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.rename(target, old)
                os.rename(staging, target)
                shutil.rmtree(old, ignore_errors=True)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        else:
            with atomic_dir(target) as tmp:
                _write(tmp, files)
    return {**_summary(target, manifest, reused=False), "replaced": replaced}


def _older_build(folder: Path, name: str) -> dict | None:
    """The recipe of the build in `folder` when it is an untouched build of dataset `name` (manifest.json names
    it and lists every other file with its sha256), else None."""
    try:
        old = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        listed = old["files"]
        present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {"manifest.json"}
        if old.get("name") != name or present != set(listed):
            return None
        if any(hashlib.sha256((folder / rel).read_bytes()).hexdigest() != digest for rel, digest in listed.items()):
            return None
        return old.get("recipe", {})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def build_wordnet_sounds(root: str | os.PathLike, force: bool = False, wordnet_dir: Path = wn.WORDNET_DIR,
                         copyright_file: Path = wn.COPYRIGHT_FILE, config: str | os.PathLike | None = None,
                         folder_name: str = NAME) -> dict:
    """Build (or reuse) `<root>/<folder_name>`; returns {"path", "reused", "num_train", "num_test", "classes",
    "rules" (what each masking rule changed and what was dropped: manifest.json's "rules")}."""
    recipe = load_recipe(config)
    nouns = wn.read_nouns(wordnet_dir)
    selection = select(nouns, recipe, wn.read_tag_counts(wordnet_dir), wordnet_dir)
    version = package_version(wn.PACKAGE)
    side = split_items(selection.items, recipe, nouns)
    manifest = {"name": NAME, "format_version": FORMAT_VERSION, "recipe_hash": sha256_json(recipe.as_dict()),
                "recipe": recipe.as_dict(), "package": wn.PACKAGE, "package_version": version,
                "rules": selection.counts, "class_words": selection.words,
                "split": split_stats(selection.items, side, nouns, recipe)}
    files = dataset_files(selection.items, side, _readme(selection.items, side, recipe, version, selection.counts),
                          _license_text(copyright_file), manifest)
    return publish(root, folder_name, files, force, "WordNet-Sounds")


def split_stats(items: dict[str, list[tuple[str, str]]], side: dict[str, str], nouns: dict[str, wn.Synset],
                recipe: WordnetRecipe) -> dict:
    """How far the split keeps a class's test items from its training items: the test items whose text names
    (whole words, case-insensitive) a lemma of a training item of their class that is not a lemma of their own
    ("airliner: a commercial airplane" with airplane in train)."""
    def lemmas(o: str) -> set[str]:
        return {" ".join(l.replace("_", " ").lower().split()) for l in nouns[o].lemmas}

    named = n_test = 0
    for name, members in items.items():
        train = set().union(*(lemmas(o) for o, _ in members if side[f"{name}/{o}"] == "train"))
        for o, text in members:
            if side[f"{name}/{o}"] == "test":
                n_test += 1
                named += bool(cw.phrase_pattern(train - lemmas(o)).search(text))
    return {"rule": recipe.split_rule, "num_test": n_test,
            "test_items_naming_a_training_item_of_their_class": named}


def _summary(target: Path, manifest: dict, reused: bool) -> dict:
    return {"path": str(target), "reused": reused, "num_train": manifest["num_train"],
            "num_test": manifest["num_test"], "classes": manifest["classes"], "rules": manifest.get("rules", {}),
            "split": manifest.get("split", {})}
