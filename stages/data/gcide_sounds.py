"""GCIDE-Sounds: WordNet-Sounds' classes and hyponyms, each item written from GCIDE's definition of the hyponym
instead of WordNet's gloss. The text proxy's cross-dataset (domain-shift) target: a prompt trained on
WordNet-Sounds is evaluated on another author's descriptions of the same kinds of things.

    build_gcide_sounds(Path("data"))  ->  data/gcide-sounds/{<class>/<offset>.txt, train.csv, test.csv,
                                                             README.md, LICENSE, manifest.json}

The rule (rule_version 1; configs/datasets/gcide-sounds.toml, [prepare]):

- Classes and candidate items: WordNet-Sounds' (the config named by `classes_from`: the same class synsets
  and names, the same transitive hyponyms given to the same classes by the same rule), before WordNet-Sounds
  masks, deduplicates or caps them.
- Definition of a candidate (stages/data/gcide.py reads dict-gcide's files): its WordNet lemmas are looked up
  in GCIDE in WordNet's order. A definition is usable when it defines the lemma (a sense of an entry whose
  headword is the lemma and whose part of speech is a noun or not given; a phrase definition "{lemma}, ...";
  or a sense that gives the lemma as another name, "called also {lemma}"), is not a pointer ("See ...",
  "Same as ...") and does not come from WordNet (GCIDE filled parts of itself with WordNet 1.5's glosses,
  tagged [WordNet 1.5]: those would be the source dataset's author again). Of the usable definitions the one
  that names the nearest WordNet ancestor of the hyponym wins (its hypernyms up to the class synset and
  `ancestor_levels` synsets above it, lemmas as whole words with plurals: a "pointer" under dog takes GCIDE's
  "one of a breed of dogs trained to stop at scent of game", not "the hand of a timepiece"); ties go to more
  ancestors named, then to the first lemma and GCIDE's order. A definition naming no ancestor is used only
  when it shares at least two content words (4+ letters) with WordNet's gloss (the most shared wins): that
  picks the sense, the words are GCIDE's ("mosquito: any one of various species of gnats ... the females have
  a proboscis"). Through a lemma with several WordNet noun senses an ancestor's name is not enough, a shared
  content word is needed too ('wagon' under car is the station wagon, not GCIDE's "freight car on a
  railway"). Otherwise the hyponym is left out.
- Left out, and counted: a hyponym none of whose lemmas GCIDE indexes (no_entry), one with entries but no
  usable definition (no_usable_definition: only WordNet's glosses, pointers or other parts of speech), one
  whose usable definitions neither name an ancestor nor share two words with the gloss (no_matching_sense).
- Text of an item: "<lemma>: <definition>", masked by the same five rules as WordNet-Sounds
  (stages/data/class_words.py; the lemma shown is the first that survives masking). Then WordNet-Sounds'
  drops, keyed on the definition: fewer than two words of 3+ letters left, a definition shared across classes
  (dropped from all), a definition repeated within a class (kept once), more than max_items (the first in
  sha256(seed:offset) order kept), fewer than min_items stops the build.
- Split: WordNet-Sounds' split rule, with this config's seed and test_fraction.

Shared with WordNet-Sounds: the class list, the hyponym lists and WordNet's sense inventory (which hyponym
belongs where, and which lemma names it). Not shared: the author and the wording of every item (GCIDE is
mostly Webster's 1913 dictionary, with later additions), and the coverage (a hyponym GCIDE lacks is not an
item here). The same hyponym may be a WordNet-Sounds training item and a GCIDE-Sounds test item: same
concept, another author's text; manifest.json counts them.

GCIDE is free software under the GNU GPL (version 2 or later); the built folder carries the notice and the
source in LICENSE and README.md. Deterministic and atomic like WordNet-Sounds (its `publish`).
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cache.errors import UserError
from cache.fingerprint import sha256_json
from stages.data import class_words as cw
from stages.data import gcide as gc
from stages.data import wordnet as wn
from stages.data import wordnet_sounds as ws
from stages.data.sound_packages import package_version
from stages.fields import opt

NAME = "gcide-sounds"
FORMAT_VERSION = 1
RULE_VERSION = 1


@dataclass(frozen=True)
class GcideRecipe:
    """The [prepare] table of configs/datasets/gcide-sounds.toml."""

    classes_from: str = opt("wordnet-sounds", "The WordNet-Sounds dataset config whose classes, synsets and hyponym "
                                              "rule are used.")
    rule_version: int = opt(RULE_VERSION, "Version of this rule (this code builds rule version 1 only).")
    ancestor_levels: int = opt(2, "WordNet hypernym levels above the class synset whose lemmas may pick a sense.")
    min_items: int = opt(3, "Fewest items a class may keep; fewer stops the build.")
    max_items: int = opt(60, "Most items a class keeps (the first in sha256(seed:offset) order).")
    test_fraction: float = opt(1 / 3, "Share of each class's items in the test split.")
    seed: int = opt(0, "Seed of the item cap and the split hashes.")
    split_rule: str = opt("item", "As WordNet-Sounds' split_rule: item | subtree.")
    path: str = opt("", "The config file it came from (for messages).")
    wordnet: ws.WordnetRecipe | None = opt(None, "The recipe of `classes_from` (filled in by load_recipe).")

    def __post_init__(self) -> None:
        where = f"dataset config {self.path}: [prepare]"
        if self.rule_version != RULE_VERSION:
            raise UserError(f"{where} rule_version {self.rule_version!r}: this version of sept-pipeline builds rule "
                            f"version {RULE_VERSION} only (stages/data/gcide_sounds.py)")
        if self.split_rule not in ws.SPLIT_RULES:
            raise UserError(f"{where} split_rule {self.split_rule!r}: expected one of {', '.join(ws.SPLIT_RULES)}")
        if not 1 <= self.min_items <= self.max_items:
            raise UserError(f"{where}: need 1 <= min_items <= max_items, got {self.min_items} and {self.max_items}")
        if not 0 < self.test_fraction < 1:
            raise UserError(f"{where} test_fraction {self.test_fraction!r}: expected a number in (0, 1)")
        if not 0 <= self.ancestor_levels <= 10:
            raise UserError(f"{where} ancestor_levels {self.ancestor_levels!r}: expected an integer in [0, 10]")

    @property
    def synsets(self) -> tuple[tuple[str, str], ...]:
        return self.wordnet.synsets

    def as_dict(self) -> dict:
        return {"classes_from": self.classes_from, "rule_version": self.rule_version,
                "ancestor_levels": self.ancestor_levels, "min_items": self.min_items, "max_items": self.max_items,
                "test_fraction": round(self.test_fraction, 9), "seed": self.seed, "split_rule": self.split_rule,
                "wordnet": self.wordnet.as_dict()}


_KEYS = {"builder", "classes_from", "rule_version", "ancestor_levels", "min_items", "max_items", "test_fraction",
         "seed", "split_rule"}


def load_recipe(config: str | os.PathLike | None = None) -> GcideRecipe:
    """The recipe of the shipped gcide-sounds config (or of the dataset TOML at `config`), with the WordNet-Sounds
    recipe it takes its classes from."""
    spec, raw, where = ws.read_prepare(config, NAME, _KEYS)
    kw = {k: raw[k] for k in _KEYS - {"builder"} if k in raw}
    wordnet = ws.load_recipe(kw.get("classes_from", "wordnet-sounds"))
    recipe = GcideRecipe(path=str(spec.path), wordnet=wordnet, **kw)
    if sorted(spec.classes) != wordnet.classes:
        raise UserError(f"{where}: key classes lists {sorted(spec.classes)} but {recipe.classes_from} has "
                        f"{wordnet.classes}: they must be the same classes")
    return recipe


# --- picking a definition ----------------------------------------------------------------------------------

def ancestor_words(nouns: dict[str, wn.Synset], offset: str, root: str, levels: int,
                   irregular: dict[str, list[str]]) -> list[re.Pattern]:
    """Whole-word patterns of the lemmas (with plurals) of the hyponym's WordNet ancestors, nearest first: its
    hypernyms up to the class synset `root`, then `levels` levels above it."""
    def up(frontier: set[str], stop: str | None) -> list[set[str]]:
        rings, seen = [], set(frontier)
        while frontier:
            nxt = {h for o in frontier for h in nouns[o].hypernyms if h in nouns and h not in seen}
            if stop is not None:
                nxt = {h for h in nxt if h == stop or stop in wn.hypernym_closure(nouns, h)}
            seen |= nxt
            if nxt:
                rings.append(nxt)
            frontier = nxt - ({stop} if stop else set())
        return rings

    rings = up({offset}, root)
    rings += up({root}, None)[:levels]
    out = []
    for ring in rings:
        forms = {f for o in sorted(ring) for l in nouns[o].lemmas
                 for f in cw.plural_forms(" ".join(l.replace("_", " ").lower().split()), irregular)}
        out.append(_pattern(tuple(sorted(forms))))
    return out


@functools.lru_cache(maxsize=None)
def _pattern(forms: tuple[str, ...]) -> re.Pattern:
    return cw.phrase_pattern(forms)


def _called_also(raw: str, lemma: str) -> bool:
    """The block gives `lemma` as another name of what it defines: "... called also {lemma}" (or "also called")
    within one sentence."""
    low = raw.lower()
    at = low.find("{" + lemma + "}")
    while at >= 0:
        sentence = re.split(r"[.;]", low[:at])[-1]
        if "called also" in sentence or "also called" in sentence:
            return True
        at = low.find("{" + lemma + "}", at + 1)
    return False


def candidates(dictionary: gc.Gcide, lemma: str) -> tuple[list[gc.Definition], int]:
    """Usable GCIDE definitions of `lemma` (see the module docstring) and how many entries GCIDE indexes for it."""
    entries = dictionary.entries(lemma)
    out = []
    for entry in entries:
        for d in gc.definitions(entry):
            if d.kind not in ("sense", "phrase") or d.is_reference or d.from_wordnet:
                continue
            defines = (d.kind == "sense" and lemma in d.headwords and d.is_noun) or \
                (d.kind == "phrase" and lemma in d.headwords) or _called_also(d.raw, lemma)
            if defines:
                out.append(d)
    return out, len(entries)


STOPWORDS = frozenset("""that with from which this these those have having been being used other into such than
them their there where when what also like very more most some kind sort form especially usually often called
various species genus family part""".split())
MIN_SHARED = 2


def content_words(text: str) -> set[str]:
    """Words of 4+ letters, lower case, a final 's' dropped, common function words left out."""
    return {w[:-1] if w.endswith("s") else w for w in re.findall(r"[a-z]{4,}", text.lower()) if w not in STOPWORDS}


def pick_definition(dictionary: gc.Gcide, lemmas: tuple[str, ...], ancestors: list[re.Pattern],
                    gloss: str = "", polysemous: frozenset[str] = frozenset()) -> tuple[str, str, str]:
    """(outcome, lemma, definition text): outcome "ok", or why the hyponym is left out ("no_entry",
    "no_usable_definition", "no_matching_sense"). The rank: a definition naming an ancestor (the nearest, then
    the most ancestors named) before one that only shares MIN_SHARED or more content words with WordNet's gloss
    (the most shared first); then WordNet's lemma order and GCIDE's order. Through a lemma with several noun
    senses in WordNet (`polysemous`: 'wagon' is also a station wagon) naming an ancestor is not enough: the
    definition must also share a content word with the gloss (GCIDE's "wagon: a freight car on a railway"
    names car but is not the station wagon)."""
    best, indexed, usable = None, False, False
    rank = 0
    gloss_words = content_words(gloss)
    for lemma in lemmas:
        word = " ".join(lemma.replace("_", " ").lower().split())
        defs, n_entries = candidates(dictionary, word)
        indexed |= n_entries > 0
        for d in defs:
            usable = True
            hits = [i for i, p in enumerate(ancestors) if p.search(d.text)]
            shared = len(content_words(d.text) & gloss_words)
            if hits and (shared or word not in polysemous):
                key = (0, min(hits), -len(hits), rank)
            else:
                key = (1, -shared, 0, rank) if shared >= MIN_SHARED else None
            if key is not None and (best is None or key < best[0]):
                best = (key, lemma, d.text)
            rank += 1
    if best is not None:
        return "ok", best[1], best[2]
    return ("no_matching_sense" if usable else "no_usable_definition" if indexed else "no_entry"), "", ""


# --- the dataset ------------------------------------------------------------------------------------------

def select(nouns: dict[str, wn.Synset], recipe: GcideRecipe, dictionary: gc.Gcide, counts: dict[str, int],
           wordnet_dir: Path = wn.WORDNET_DIR) -> ws.Selection:
    pool = ws.owned_hyponyms(nouns, recipe.wordnet, counts)
    maskers = ws.class_maskers(nouns, recipe.wordnet, wordnet_dir)
    irregular = wn.read_exceptions("n", wordnet_dir)
    roots = dict(recipe.synsets)
    senses: dict[str, int] = {}
    for synset in nouns.values():
        for lemma in {" ".join(l.replace("_", " ").lower().split()) for l in synset.lemmas}:
            senses[lemma] = senses.get(lemma, 0) + 1
    polysemous = frozenset(l for l, n in senses.items() if n > 1)
    left_out = {"no_entry": 0, "no_usable_definition": 0, "no_matching_sense": 0}
    texts: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {}
    for name, members in pool.items():
        texts[name] = {}
        for o in members:
            ancestors = ancestor_words(nouns, o, roots[name], recipe.ancestor_levels, irregular)
            outcome, lemma, definition = pick_definition(dictionary, nouns[o].lemmas, ancestors, nouns[o].gloss,
                                                         polysemous)
            if outcome != "ok":
                left_out[outcome] += 1
                continue
            ordered = (lemma,) + tuple(l for l in nouns[o].lemmas if l != lemma)
            texts[name][o] = ws.item_text(ordered, definition, maskers[name])
    selection = ws.keep_items(texts, recipe, f"dataset config {recipe.path}", key=_definition_key,
                              hint="GCIDE defines too few of its hyponyms (lower min_items)")
    selection.counts["dropped"].update(left_out)
    selection.counts["candidates"] = sum(len(m) for m in pool.values())
    selection.words = {name: m.words.as_dict() for name, m in sorted(maskers.items())}
    return selection


def _definition_key(text: str) -> str:
    """What two items must not share: the definition (the text after "<lemma>: "), lower case."""
    head, sep, rest = text.partition(": ")
    return (rest if sep and ":" not in head and len(head) < 60 else text).lower()


def shared_hyponyms(items: dict[str, list[tuple[str, str]]], side: dict[str, str], recipe: GcideRecipe,
                    nouns: dict[str, wn.Synset], counts: dict[str, int], wordnet_dir: Path) -> dict:
    """How many items are hyponyms that WordNet-Sounds (built from `classes_from` now) also holds, and how many
    test items here are WordNet-Sounds training items: the same concept in another author's words."""
    source = ws.select(nouns, recipe.wordnet, counts, wordnet_dir)
    source_side = ws.split_items(source.items, recipe.wordnet, nouns)
    in_source = {f"{name}/{o}": source_side[f"{name}/{o}"] for name, m in source.items.items() for o, _ in m}
    here = [(f"{name}/{o}", side[f"{name}/{o}"]) for name, m in items.items() for o, _ in m]
    return {"items_also_in_wordnet_sounds": sum(k in in_source for k, _ in here),
            "test_items_that_are_wordnet_sounds_train_items": sum(s == "test" and in_source.get(k) == "train"
                                                                  for k, s in here),
            "num_test": sum(s == "test" for _, s in here)}


def _license_text(copyright_file: Path) -> str:
    notice = ws.read_notice(copyright_file)
    m = re.search(r"The GCIDE is distributed under the following license:\n\n(.*?)\n\n\s*On Debian", notice, re.S)
    body = m.group(1) if m else (
        "GCIDE is free software; you can redistribute it and/or modify it under the terms of the GNU General\n"
        "Public License as published by the Free Software Foundation; either version 2, or (at your option)\n"
        "any later version.")
    return ("The item texts of this dataset are derived from GCIDE, the GNU version of the Collaborative\n"
            "International Dictionary of English (largely Webster's Revised Unabridged Dictionary of 1913, with\n"
            "later additions), as shipped by the Debian package dict-gcide. They are redistributed under GCIDE's\n"
            "licence, the GNU General Public License, version 2 or later:\n\n" + body.strip() + "\n\n"
            "The full text of the GPL is at https://www.gnu.org/licenses/old-licenses/gpl-2.0.html (on Debian:\n"
            "/usr/share/common-licenses/GPL-2). The source of these texts is the dict-gcide package (GCIDE's\n"
            "files, ftp.gnu.org/gnu/gcide) and stages/data/gcide_sounds.py, which selects and masks them.\n"
            "The classes and the hyponym lists come from WordNet 3.0 (Princeton University; WordNet 3.0\n"
            "Copyright 2006 by Princeton University, free licence with attribution, see WordNet-Sounds).\n")


def _readme(items, side, recipe: GcideRecipe, versions: dict[str, str], counts: dict, shared: dict) -> str:
    lines = ["# GCIDE-Sounds", "",
             "Built by `sept-pipeline datasets prepare gcide-sounds`: the classes and hyponyms of WordNet-Sounds "
             f"({recipe.classes_from}, WordNet 3.0 from Debian {wn.PACKAGE} {versions[wn.PACKAGE]}), each item "
             f"written from GCIDE's definition of the hyponym (Debian {gc.PACKAGE} {versions[gc.PACKAGE]}) instead "
             f"of WordNet's gloss; rule version {recipe.rule_version}. Items: `<class>/<offset>.txt` (UTF-8, one "
             "line, \"lemma: definition\", offset = the hyponym's WordNet data.noun offset); train.csv / test.csv "
             "(columns path,classname). The rule: stages/data/gcide_sounds.py and the dataset's config.", "",
             "Licence: GCIDE is free software under the GNU General Public License, version 2 or later; these texts "
             "are derived from it and carry the same licence (LICENSE). Source: the dict-gcide package.", "",
             "Shared with WordNet-Sounds: classes, hyponym lists, WordNet's sense inventory. Not shared: author, "
             "wording, coverage. Definitions GCIDE took from WordNet 1.5 are not used.", "",
             *ws.MASKING_NOTE, "",
             *[f"- {line}" for line in ws.rule_lines(counts, recipe.split_rule)],
             f"- hyponyms also in WordNet-Sounds: {shared['items_also_in_wordnet_sounds']}; test items here that are "
             f"WordNet-Sounds training items: {shared['test_items_that_are_wordnet_sounds_train_items']} of "
             f"{shared['num_test']}", "",
             *ws.class_table(items, side, dict(recipe.synsets))]
    return "\n".join(lines) + "\n"


def build_gcide_sounds(root: str | os.PathLike, force: bool = False, wordnet_dir: Path = wn.WORDNET_DIR,
                       gcide_dir: Path = gc.GCIDE_DIR, copyright_file: Path = gc.COPYRIGHT_FILE,
                       config: str | os.PathLike | None = None, folder_name: str = NAME) -> dict:
    """Build (or reuse) `<root>/<folder_name>`; returns what build_wordnet_sounds returns."""
    recipe = load_recipe(config)
    nouns = wn.read_nouns(wordnet_dir)
    tag_counts = wn.read_tag_counts(wordnet_dir)
    selection = select(nouns, recipe, gc.Gcide(gcide_dir), tag_counts, wordnet_dir)
    side = ws.split_items(selection.items, recipe, nouns)
    versions = {p: package_version(p) for p in (wn.PACKAGE, gc.PACKAGE)}
    shared = shared_hyponyms(selection.items, side, recipe, nouns, tag_counts, wordnet_dir)
    manifest = {"name": NAME, "format_version": FORMAT_VERSION, "recipe_hash": sha256_json(recipe.as_dict()),
                "recipe": recipe.as_dict(), "packages": versions, "license": "GPL-2.0-or-later (GCIDE)",
                "rules": selection.counts, "class_words": selection.words,
                "split": ws.split_stats(selection.items, side, nouns, recipe), "shared_with_wordnet_sounds": shared}
    files = ws.dataset_files(selection.items, side, _readme(selection.items, side, recipe, versions, selection.counts,
                                                            shared), _license_text(copyright_file), manifest)
    return ws.publish(root, folder_name, files, force, "GCIDE-Sounds")
