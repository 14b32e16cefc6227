"""WordNet-Sounds rule version 2 (no class words in the items) and GCIDE-Sounds, built for real from the Debian
packages wordnet-base and dict-gcide (the session's `text_proxy_root`).

The class words are recomputed here from the raw WordNet files (records read at their byte offsets, `+`
pointers followed into data.verb / data.adj, inflections from the .exc files and the regular endings), not
through stages/data/class_words.py, so the check does not share the code it checks.
"""
from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest

from cache.errors import UserError
from stages.data import gcide as gc
from stages.data import wordnet as wn
from stages.data.class_words import ClassWords, Masker
from stages.data.gcide_sounds import build_gcide_sounds, load_recipe as load_gcide_recipe
from stages.data.wordnet_sounds import load_recipe

WORDNET = wn.WORDNET_DIR
DATA_FILES = {"n": "data.noun", "v": "data.verb", "a": "data.adj", "s": "data.adj", "r": "data.adv"}
EXC_FILES = {"n": "noun.exc", "v": "verb.exc", "a": "adj.exc", "s": "adj.exc", "r": "adv.exc"}
DATASETS = ("wordnet-sounds", "gcide-sounds")


def _record(pos: str, offset: str) -> tuple[list[str], list[list[str]]]:
    """(words, pointers) of the synset record at byte `offset` of the data file of `pos`, parsed here."""
    with open(WORDNET / DATA_FILES[pos], "rb") as fh:
        fh.seek(int(offset))
        fields = fh.readline().decode("utf-8").split(" | ")[0].split()
    assert fields[0] == offset
    words = [re.sub(r"\([a-z]+\)$", "", fields[4 + 2 * i]) for i in range(int(fields[3], 16))]
    k = 4 + 2 * len(words)
    return words, [fields[k + 1 + 4 * i:k + 5 + 4 * i] for i in range(int(fields[k]))]


def _exceptions(pos: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for line in (WORDNET / EXC_FILES[pos]).read_text(encoding="utf-8").splitlines():
        inflected, *bases = line.split()
        for base in bases:
            out.setdefault(base, set()).add(inflected)
    return out


def own_class_words(offset: str) -> tuple[set[str], dict[str, str]]:
    """(every word of every lemma of the class synset, 'of' aside; derivationally related form -> its pos)."""
    words, pointers = _record("n", offset)
    parts = {w for lemma in words for w in lemma.lower().split("_") if w != "of"}
    derived = {}
    for symbol, target, pos, source_target in pointers:
        if symbol == "+":
            target_words, _ = _record(pos, target)
            derived[target_words[int(source_target[2:], 16) - 1].lower()] = pos
    return parts, derived


def is_inflection(token: str, word: str, pos: str, exceptions: dict[str, dict[str, set[str]]]) -> bool:
    """`token` is `word` or one of its inflections as `pos` (regular endings or the .exc file)."""
    if token == word or token in exceptions[pos].get(word, set()):
        return True
    endings = {"n": {"s", "es"}, "v": {"s", "es", "ed", "d", "ing"}}.get(pos, {"er", "est", "r", "st"})
    stems = {word: endings}
    if word.endswith("e"):
        stems[word[:-1]] = {"ing", "ed", "er", "est"}
    if word.endswith("y"):
        stems[word[:-1]] = {"ies", "ied", "ier", "iest"}
    stems.setdefault(word + word[-1], {"ing", "ed", "er", "est"})
    return any(token.startswith(stem) and token[len(stem):] in ends for stem, ends in stems.items())


def _items(folder: Path) -> list[tuple[str, str, str]]:
    """(split, classname, text) of every item of a built folder."""
    out = []
    for split in ("train", "test"):
        with open(folder / f"{split}.csv", newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                out.append((split, r["classname"], (folder / r["path"]).read_text(encoding="utf-8").strip()))
    return out


@pytest.mark.parametrize("dataset", DATASETS)
def test_no_item_holds_a_word_of_its_own_class(text_proxy_root, dataset):
    exceptions = {pos: _exceptions(pos) for pos in EXC_FILES}
    words = {name: own_class_words(offset) for name, offset in load_recipe().synsets}
    assert words["song"][1] == {"songster": "n", "sing": "v"} and "raptorial" in words["bird of prey"][1]
    assert {"home", "household", "appliance"} <= words["home appliance"][0]
    checked = 0
    for _, name, text in _items(text_proxy_root / dataset):
        parts, derived = words[name]
        low = text.lower()
        assert not [w for w in parts if w in low], (name, text)  # as a substring anywhere: compounds too
        tokens = re.findall(r"[^\W_]+(?:['\u2019-][^\W_]+)*", low)
        assert not [(t, w) for t in tokens for w, pos in derived.items() if is_inflection(t, w, pos, exceptions)
                    and " " not in w], (name, text)
        checked += 1
    assert checked > 1000


def test_the_words_the_review_found_are_gone_and_counted(text_proxy_root):
    folder = text_proxy_root / "wordnet-sounds"
    texts = {(name, text.split(":")[0]) for _, name, text in _items(folder)}
    # the lemma goes with the compound, the next lemma or the gloss alone stands in its place
    for name, word in [("boat", "fireboat"), ("ship", "battleship"), ("finch", "goldfinch"), ("dog", "bulldog"),
                       ("gun", "shotgun"), ("machine", "machinery"), ("air current", "crosswind")]:
        assert not any(w.lower().endswith(word) or word in w.lower() for n, w in texts if n == name), word
    manifest = json.loads((folder / "manifest.json").read_text())
    rules = manifest["rules"]
    assert manifest["recipe"]["rule_version"] == 2 and rules["items"] == manifest["num_train"] + manifest["num_test"]
    per = rules["changed_per_rule"]
    assert list(per) == ["derivation", "head", "lemma", "modifier", "substring"]  # sorted JSON keys
    assert all(0 < per[r]["items"] <= per[r]["candidates"] <= rules["candidates"] for r in per)
    assert 0 < rules["items_changed_beyond_rule_1"] < rules["items"]
    assert manifest["class_words"]["song"]["derivation"][:3] == ["sang", "sing", "singed"]
    readme = (folder / "README.md").read_text()
    assert f"rule 2 (substring): changed {per['substring']['items']} kept items" in readme


def test_the_masker_on_a_hand_worked_text():
    words = ClassWords(phrases=("boat", "boats", "hand tool", "hand tools"), substrings=("boat",),
                       derived=("sang", "sing", "singing"), heads=("tool",), modifiers=("hand",))
    masker = Masker(words)
    text = "Fireboat: a hand tools kit; the HOUSEBOATS sang, two-boat race; toolbox handsaw; using a stool"
    masked, fired = masker.mask(text)
    assert masked == "a kit; the, race; using a"
    assert fired == ("lemma", "substring", "derivation", "head", "modifier")
    assert masker.mask("a singer sings") == ("a singer sings", ())  # derived forms are whole tokens only


def test_gcide_definitions_are_read_from_the_dictd_files():
    dictionary = gc.Gcide()
    assert gc.b64_number("A") == 0 and gc.b64_number("BA") == 64 and gc.b64_number("/") == 63
    [entry] = [e for e in dictionary.entries("goldfinch") if e.startswith("Goldfinch")]
    senses = [d for d in gc.definitions(entry) if d.kind == "sense"]
    assert [d.text[:27] for d in senses] == ["A beautiful bright-colored ", "The yellow-hammer.",
                                             "A small American finch (Spi"]
    assert all(d.headwords == ("goldfinch",) and d.pos == "n." and d.sources == ("1913 Webster",) for d in senses)
    [borzoi] = [d for e in dictionary.entries("borzoi") for d in gc.definitions(e) if d.kind == "sense"]
    assert borzoi.from_wordnet and borzoi.text.startswith("tall, slender fast-moving dog breed")
    whale = [d for e in dictionary.entries("sperm whale") for d in gc.definitions(e) if "sperm whale" in d.headwords]
    assert [d.kind for d in whale] == ["phrase", "sense"] and whale[0].is_reference
    assert whale[1].text.startswith("A very large toothed whale (Physeter macrocephalus)")


def test_gcide_sounds_has_the_same_classes_and_hyponyms_in_other_words(text_proxy_root):
    wordnet, gcide = text_proxy_root / "wordnet-sounds", text_proxy_root / "gcide-sounds"
    recipe = load_gcide_recipe()
    assert recipe.wordnet.synsets == load_recipe().synsets
    both = {}
    for folder in (wordnet, gcide):
        for split in ("train", "test"):
            with open(folder / f"{split}.csv", newline="", encoding="utf-8") as fh:
                for r in csv.DictReader(fh):
                    both.setdefault(folder.name, {})[Path(r["path"]).stem] = (r["classname"], split,
                                                                                (folder / r["path"]).read_text())
    w, g = both["wordnet-sounds"], both["gcide-sounds"]
    assert sorted({c for c, _, _ in g.values()}) == load_recipe().classes  # all 49 classes
    roots = dict(recipe.synsets)
    for offset, (name, _, _) in g.items():  # a transitive hyponym of its class synset, walked up here
        frontier, seen = {offset}, set()
        while frontier and roots[name] not in seen:
            frontier = {p[1] for o in frontier for p in _record("n", o)[1] if p[0] == "@"} - seen
            seen |= frontier
        assert roots[name] in seen, (offset, name)
    shared = set(w) & set(g)
    assert len(shared) > 500 and all(w[o][0] == g[o][0] for o in shared)  # same hyponym, same class
    assert all(w[o][2] != g[o][2] for o in shared)  # ... another text
    manifest = json.loads((gcide / "manifest.json").read_text())
    counted = manifest["shared_with_wordnet_sounds"]
    assert counted["items_also_in_wordnet_sounds"] == len(shared)
    assert counted["test_items_that_are_wordnet_sounds_train_items"] == sum(
        g[o][1] == "test" and w[o][1] == "train" for o in shared)
    dropped = manifest["rules"]["dropped"]
    assert dropped["no_entry"] > 0 and dropped["no_usable_definition"] > 0 and dropped["no_matching_sense"] > 0
    assert manifest["license"].startswith("GPL") and "GNU General Public License" in (gcide / "LICENSE").read_text()
    assert "GNU General Public License" in (gcide / "README.md").read_text()


def test_two_gcide_builds_are_byte_identical(text_proxy_root, tmp_path):
    built = text_proxy_root / "gcide-sounds"
    again = Path(build_gcide_sounds(tmp_path, folder_name="second")["path"])
    files = sorted(p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again).as_posix() for p in again.rglob("*") if p.is_file())
    assert all((built / f).read_bytes() == (again / f).read_bytes() for f in files)
    assert not [p for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith(".second.")]  # no temp folder


def test_cross_plan_takes_gcide_sounds_and_refuses_a_copied_item(text_proxy_root, tmp_path):
    from pipeline.protocols.plans import make_plan
    from stages.data.datasets import load_dataset

    source = load_dataset("wordnet-sounds", text_proxy_root)
    plan = make_plan("cross", source, text_proxy_root, 0.5, targets=["gcide-sounds"])
    assert [(e.name, e.role) for e in plan.evals] == [("source", ""), ("gcide-sounds", "target")]
    assert plan.evals[1].classnames == source.classnames and not plan.warnings
    # a target test item with the bytes of a source training item is refused (the check is live here)
    root = tmp_path / "data"
    for name in DATASETS:
        shutil.copytree(text_proxy_root / name, root / name)
    with open(root / "gcide-sounds" / "test.csv", newline="", encoding="utf-8") as fh:
        victim = next(csv.DictReader(fh))["path"]
    shutil.copyfile(root / "wordnet-sounds" / source.train[0].path.relative_to(source.root),
                    root / "gcide-sounds" / victim)
    n_test = len((root / "gcide-sounds" / "test.csv").read_text().splitlines()) - 1
    with pytest.raises(UserError, match=f"1 of its {n_test} test clips have the same content as training clips"):
        make_plan("cross", load_dataset("wordnet-sounds", root), root, 0.5, targets=["gcide-sounds"])


def test_a_gcide_config_with_other_classes_is_a_one_line_error(tmp_path):
    body = Path(load_gcide_recipe().path).read_text().replace('"wind instrument",\n]', ']')
    path = tmp_path / "gcide-sounds.toml"
    path.write_text(body)
    with pytest.raises(UserError) as e:
        load_gcide_recipe(path)
    assert str(path) in str(e.value) and "must be the same classes" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UserError, match=r"gcide.index: not found.*apt-get install dict-gcide"):
        build_gcide_sounds(tmp_path / "out", gcide_dir=tmp_path / "no-gcide")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_subtree_groups_keep_a_hyponym_with_its_item_descendants():
    from stages.data.wordnet_sounds import item_groups

    def syn(offset, hypernyms=()):
        return wn.Synset(offset=offset, lex_filenum=5, lemmas=(f"w{offset}",), lex_ids=(0,), hypernyms=hypernyms,
                         hyponyms=(), gloss="")

    # R is the class; A under R with A1, A2 under A; B under R; C under X, a synset that is not an item
    nouns = {o: syn(o, h) for o, h in [("R", ()), ("A", ("R",)), ("A1", ("A",)), ("A2", ("A",)), ("B", ("R",)),
                                          ("X", ("R",)), ("C", ("X",)), ("A11", ("A1",))]}
    members = ["A", "A1", "A11", "A2", "B", "C"]
    assert item_groups(nouns, "R", members, most=4) == [["A", "A1", "A11", "A2"], ["B"], ["C"]]
    # too big for the test share: broken at its top, A alone, A1 with its descendant, A2
    assert item_groups(nouns, "R", members, most=2) == [["A"], ["A1", "A11"], ["A2"], ["B"], ["C"]]


def test_subtree_split_on_wordnet_keeps_groups_together_and_names_fewer_training_items():
    import dataclasses

    from stages.data.wordnet_sounds import item_groups, select, split_items, split_stats

    recipe = load_recipe()
    nouns = wn.read_nouns()
    selection = select(nouns, recipe, wn.read_tag_counts())
    subtree = dataclasses.replace(recipe, split_rule="subtree")
    sides = {rule: split_items(selection.items, r, nouns) for rule, r in (("item", recipe), ("subtree", subtree))}
    roots = dict(recipe.synsets)
    for name, members in selection.items.items():
        n_test = round(len(members) / 3)
        test = sum(sides["subtree"][f"{name}/{o}"] == "test" for o, _ in members)
        assert n_test - 2 <= test <= n_test, name
        for group in item_groups(nouns, roots[name], [o for o, _ in members], n_test):
            assert len({sides["subtree"][f"{name}/{o}"] for o in group}) == 1, (name, group)
    key = "test_items_naming_a_training_item_of_their_class"
    named = {rule: split_stats(selection.items, side, nouns, subtree)[key] for rule, side in sides.items()}
    assert named["subtree"] < named["item"] / 2
