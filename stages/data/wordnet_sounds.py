"""WordNet-Sounds: a text dataset with real semantics, built from WordNet 3.0's noun database.

    build_wordnet_sounds(Path("data"))  ->  data/wordnet-sounds/{<class>/<offset>.txt, train.csv, test.csv,
                                                                 README.md, LICENSE, manifest.json}

It stands in for an audio dataset where no pretrained audio-language model can be had: a class is a noun
synset of a thing that makes sounds (configs/datasets/wordnet-sounds.toml, [prepare]: picked by data.noun
offset), an item is one of its transitive hyponyms written as text. The rule (rule_version 1):

- Class name: the synset's most common lemma (highest tag count in WordNet's cntlist.rev; ties: the lemma
  WordNet lists first), underscores as spaces; made unambiguous: a lemma that is also a lemma of another
  chosen class's synset or of one of the class's own hyponyms is passed over for the next one (kept only when
  every lemma is such). The config spells the names out; the build checks them against this rule.

- Items of a class: every transitive `~` hyponym of its synset. A synset under two chosen classes goes to the
  more specific one (the class whose own synset lies under every other such class); if no class is more
  specific than all the others (two unrelated parents), it goes to neither. A chosen class's own synset is
  never an item of another class.
- Text of an item: "<lemma>: <gloss>" with the lemma's underscores as spaces and the first of the synset's
  lemmas that survives masking. Masking removes, as whole words and case-insensitively, every lemma of the
  class's synset (its synonyms) and their plurals (+s, +es, y -> ies, and WordNet's own irregular plurals
  from noun.exc), so no item names its class.
- Texts identical across classes are dropped from all of them (and kept once within a class).
- A class keeps at most max_items items: the first in sha256("<seed>:<offset>") order. It must keep at least
  min_items, else the build stops (the config is wrong, not the data).
- Split per class: items in sha256("<seed>:split:<class>:<offset>") order, the first round(n * test_fraction)
  to test, the rest to train.

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
from dataclasses import dataclass
from pathlib import Path

from cache.atomic import atomic_dir
from cache.errors import UserError
from cache.fingerprint import sha256_json
from cache.lock import file_lock
from stages.data import wordnet as wn
from stages.data.sound_packages import package_version
from stages.data.specs import dataset_spec
from stages.fields import opt

NAME = "wordnet-sounds"
FORMAT_VERSION = 1
LICENSE_HEADER = "WordNet 3.0 Copyright 2006 by Princeton University.  All rights reserved."


@dataclass(frozen=True)
class WordnetRecipe:
    """The [prepare] table of configs/datasets/wordnet-sounds.toml: what decides the dataset's content."""

    synsets: tuple[tuple[str, str], ...] = opt((), "class name -> data.noun offset (8 digits) of its synset.")
    wordnet_version: str = opt("3.0", "WordNet version the offsets belong to (only 3.0 is read).")
    rule_version: int = opt(1, "Version of the selection rule; bump it when the rule or the synset list changes.")
    min_items: int = opt(32, "Fewest items a class may keep; fewer stops the build.")
    max_items: int = opt(60, "Most items a class keeps (the first in sha256(seed:offset) order).")
    test_fraction: float = opt(1 / 3, "Share of each class's items in the test split.")
    seed: int = opt(0, "Seed of the item cap and the split hashes.")
    path: str = opt("", "The config file it came from (for messages).")

    def __post_init__(self) -> None:
        where = f"dataset config {self.path}: [prepare]"
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
                "test_fraction": round(self.test_fraction, 9), "seed": self.seed, "synsets": dict(self.synsets)}


_RECIPE_KEYS = {"builder", "wordnet_version", "rule_version", "min_items", "max_items", "test_fraction", "seed",
                "synsets"}


def load_recipe(config: str | os.PathLike | None = None) -> WordnetRecipe:
    """The recipe of the shipped wordnet-sounds config (or of the dataset TOML at `config`)."""
    spec = dataset_spec(config or NAME)
    with open(spec.path, "rb") as fh:
        raw = tomllib.load(fh).get("prepare", {})
    where = f"dataset config {spec.path}: [prepare]"
    unknown = sorted(set(raw) - _RECIPE_KEYS)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_RECIPE_KEYS))})")
    if raw.get("builder") != NAME:
        raise UserError(f"{where} builder {raw.get('builder')!r}: expected {NAME!r}")
    synsets = raw.get("synsets", {})
    if not isinstance(synsets, dict):
        raise UserError(f"{where}.synsets must be a table of class name = \"offset\"")
    kw = {k: raw[k] for k in ("wordnet_version", "rule_version", "min_items", "max_items", "test_fraction", "seed")
          if k in raw}
    recipe = WordnetRecipe(synsets=tuple(sorted(synsets.items())), path=str(spec.path), **kw)
    if recipe.classes != sorted(spec.classes):
        raise UserError(f"{where}.synsets names {recipe.classes} but key classes lists {sorted(spec.classes)}: "
                        f"they must be the same classes")
    return recipe


# --- masking: no item may name its class ---------------------------------------------------------------

def irregular_plurals(wordnet_dir: Path = wn.WORDNET_DIR) -> dict[str, list[str]]:
    """singular -> WordNet's irregular plurals (noun.exc lines are 'plural singular')."""
    out: dict[str, list[str]] = {}
    path = Path(wordnet_dir) / "noun.exc"
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            f = line.split()
            if len(f) == 2:
                out.setdefault(f[1].lower(), []).append(f[0].lower())
    return out


def plural_forms(word: str, irregular: dict[str, list[str]]) -> set[str]:
    """`word` (lower case, spaces between words) and its plurals; multi-word lemmas inflect their last word
    ('hand tool' -> 'hand tools') and, for 'X of Y' lemmas, their first ('bird of prey' -> 'birds of prey')."""
    def inflect(w: str) -> set[str]:
        forms = {w, w + "s"}
        if re.search(r"(s|x|z|ch|sh)$", w):
            forms.add(w + "es")
        if re.search(r"[^aeiou]y$", w):
            forms.add(w[:-1] + "ies")
        forms.update(irregular.get(w, []))
        return forms

    parts = word.split(" ")
    forms = {word}
    forms |= {" ".join(parts[:-1] + [f]) for f in inflect(parts[-1])}
    if len(parts) > 2 and parts[1] == "of":
        forms |= {" ".join([f] + parts[1:]) for f in inflect(parts[0])}
    forms.update(irregular.get(word, []))
    return forms


def mask_pattern(lemmas: tuple[str, ...], irregular: dict[str, list[str]]) -> re.Pattern:
    """A regex matching every lemma of a synset and its plurals as whole words (letters/digits around
    it end a match), case-insensitively; longest forms first so 'hand tools' wins over 'hand tool'."""
    forms: set[str] = set()
    for lemma in lemmas:
        forms |= plural_forms(" ".join(lemma.replace("_", " ").lower().split()), irregular)
    alternatives = "|".join(re.escape(f).replace(r"\ ", r"[\s_]+") for f in sorted(forms, key=lambda f: (-len(f), f)))
    return re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])", re.IGNORECASE)


def _tidy(text: str) -> str:
    text = " ".join(text.split())
    text = re.sub(r"\s+([,;:.)])", r"\1", text)
    text = re.sub(r"\(\s*\)", "", text)
    return " ".join(text.split()).strip(" ,;")


def item_text(synset: wn.Synset, pattern: re.Pattern) -> str:
    """"<lemma>: <gloss>" with the class's lemmas removed; the lemma is the first one that survives masking
    (none when all of them are the class's words: then the masked gloss alone)."""
    gloss = _tidy(pattern.sub(" ", synset.gloss))
    for lemma in synset.lemmas:
        shown = _tidy(pattern.sub(" ", lemma.replace("_", " ")))
        if re.search(r"[A-Za-z0-9]", shown):
            return f"{shown}: {gloss}"
    return gloss


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


def select_items(nouns: dict[str, wn.Synset], recipe: WordnetRecipe, irregular: dict[str, list[str]],
                 counts: dict[str, int]) -> dict[str, list[tuple[str, str]]]:
    """class name -> [(offset, text)] sorted by offset, by the rule in this module's docstring."""
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
    items: dict[str, dict[str, str]] = {name: {} for name in roots}
    patterns = {name: mask_pattern(nouns[o].lemmas, irregular) for name, o in roots.items()}
    for o, names in owners.items():
        # the most specific owner: its own synset lies under every other owner's synset
        specific = [a for a in names if all(b == a or roots[a] in closure[b] for b in names)]
        if len(specific) == 1:
            items[specific[0]][o] = item_text(nouns[o], patterns[specific[0]])
    classes_of_text: dict[str, set[str]] = {}
    for name, texts in items.items():
        for text in texts.values():
            classes_of_text.setdefault(text.lower(), set()).add(name)
    out: dict[str, list[tuple[str, str]]] = {}
    for name in sorted(items):
        seen: set[str] = set()
        kept = []
        for o in sorted(items[name]):
            key = items[name][o].lower()
            if len(classes_of_text[key]) == 1 and key not in seen and key.strip():
                seen.add(key)
                kept.append((o, items[name][o]))
        kept = sorted(kept, key=lambda it: _order(f"{recipe.seed}:{it[0]}"))[: recipe.max_items]
        if len(kept) < recipe.min_items:
            raise UserError(f"dataset config {recipe.path}: class {name!r} (synset {roots[name]}) keeps {len(kept)} "
                            f"items, fewer than min_items = {recipe.min_items}; pick a broader synset")
        out[name] = sorted(kept)
    return out


def split_items(items: dict[str, list[tuple[str, str]]], recipe: WordnetRecipe) -> dict[str, str]:
    """'<class>/<offset>' -> 'train' | 'test', per class by the seeded hash order."""
    side: dict[str, str] = {}
    for name, members in items.items():
        order = sorted(members, key=lambda it: _order(f"{recipe.seed}:split:{name}:{it[0]}"))
        n_test = round(len(order) * recipe.test_fraction)
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


def _license_text(copyright_file: Path) -> str:
    try:
        text = copyright_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    m = re.search(r"^License: WordNet3\.0\n((?: .*\n?)+)", text, re.MULTILINE)
    if m:
        body = "\n".join("" if ln.strip() == "." else ln[1:] for ln in m.group(1).splitlines())
    else:  # the package's copyright file is gone: state the notice the licence requires
        body = (f"{LICENSE_HEADER}\n\nSee https://wordnet.princeton.edu/license-and-commercial-use for the "
                "WordNet 3.0 licence, whose notice and disclaimer must accompany every copy.")
    return ("The item texts of this dataset are derived from WordNet 3.0 (Princeton University), as shipped\n"
            "by the Debian package wordnet-base. They are redistributed under the WordNet 3.0 licence:\n\n"
            + body.rstrip() + "\n")


def _readme(items: dict[str, list[tuple[str, str]]], side: dict[str, str], recipe: WordnetRecipe,
            version: str) -> str:
    lines = ["# WordNet-Sounds", "",
             "Built by `sept-pipeline datasets prepare wordnet-sounds` from WordNet 3.0's noun database "
             f"(Debian package {wn.PACKAGE} {version}), rule version {recipe.rule_version}.",
             "A text proxy of a sound-classification task: each class is a WordNet noun synset of a thing that "
             "makes sounds; each item (`<class>/<offset>.txt`, UTF-8, one line) is one of its hyponyms as "
             "\"lemma: gloss\" with the class's own lemmas removed. train.csv / test.csv (columns path,classname) "
             "give the split. The selection rule: stages/data/wordnet_sounds.py and the dataset's config.", "",
             "WordNet 3.0 Copyright 2006 by Princeton University; licence and disclaimer in LICENSE.", "",
             "| class | synset | train | test |", "|:--|:--|--:|--:|"]
    roots = dict(recipe.synsets)
    for name, members in items.items():
        n_test = sum(side[f"{name}/{o}"] == "test" for o, _ in members)
        lines.append(f"| {name} | {roots[name]} | {len(members) - n_test} | {n_test} |")
    return "\n".join(lines) + "\n"


def _files(items: dict[str, list[tuple[str, str]]], recipe: WordnetRecipe, version: str,
           copyright_file: Path) -> dict[str, bytes]:
    """Relative path -> content of every file of the dataset folder."""
    side = split_items(items, recipe)
    files: dict[str, bytes] = {}
    rows: dict[str, list[list[str]]] = {"train": [], "test": []}
    for name, members in items.items():
        for o, text in members:
            rel = f"{class_folder(name)}/{o}.txt"
            files[rel] = (text + "\n").encode("utf-8")
            rows[side[f"{name}/{o}"]].append([rel, name])
    for split in ("train", "test"):
        files[f"{split}.csv"] = _csv(["path", "classname"], sorted(rows[split])).encode("utf-8")
    files["README.md"] = _readme(items, side, recipe, version).encode("utf-8")
    files["LICENSE"] = _license_text(copyright_file).encode("utf-8")
    manifest = {"name": NAME, "format_version": FORMAT_VERSION, "recipe_hash": sha256_json(recipe.as_dict()),
                "recipe": recipe.as_dict(), "package": wn.PACKAGE, "package_version": version,
                "classes": list(items), "num_train": len(rows["train"]), "num_test": len(rows["test"]),
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


def build_wordnet_sounds(root: str | os.PathLike, force: bool = False, wordnet_dir: Path = wn.WORDNET_DIR,
                         copyright_file: Path = wn.COPYRIGHT_FILE, config: str | os.PathLike | None = None,
                         folder_name: str = NAME) -> dict:
    """Build (or reuse) `<root>/<folder_name>`; returns {"path", "reused", "num_train", "num_test", "classes"}."""
    recipe = load_recipe(config)
    nouns = wn.read_nouns(wordnet_dir)
    items = select_items(nouns, recipe, irregular_plurals(wordnet_dir), wn.read_tag_counts(wordnet_dir))
    files = _files(items, recipe, package_version(wn.PACKAGE), copyright_file)
    manifest = json.loads(files["manifest.json"])
    root = Path(root).expanduser()
    target = root / folder_name
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / f".{folder_name}.lock"):
        if target.exists() and not force:
            if _is_complete(target, files):
                return _summary(target, manifest, reused=True)
            raise UserError(f"{target}: exists but is not this WordNet-Sounds build (files differ); remove it or "
                            f"pass --force to rebuild it")
        if target.exists():  # --force: build beside it, then swap, so a failed build keeps the old one
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
    return _summary(target, manifest, reused=False)


def _summary(target: Path, manifest: dict, reused: bool) -> dict:
    return {"path": str(target), "reused": reused, "num_train": manifest["num_train"],
            "num_test": manifest["num_test"], "classes": manifest["classes"]}
