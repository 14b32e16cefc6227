"""WordNet-Sounds, built for real from the Debian package wordnet-base (WordNet 3.0's data.noun)."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from cache.errors import UserError
from stages.data import wordnet as wn
from stages.data.datasets import dataset_classnames, load_dataset
from stages.data.fewshot import draw_fewshot
from stages.data.splits import base_new_split
from stages.data.wordnet_sounds import (WordnetRecipe, build_wordnet_sounds, class_name, load_recipe,
                                        mask_pattern, select_items)

DATA_NOUN = wn.WORDNET_DIR / "data.noun"


@pytest.fixture(scope="module")
def built(text_proxy_root) -> Path:
    return text_proxy_root / "wordnet-sounds"


def _rows(folder: Path, split: str) -> list[dict]:
    with open(folder / f"{split}.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _items_by_class(folder: Path) -> dict[str, list[tuple[str, str]]]:
    """classname -> [(path, text)] over both splits, read from the built files."""
    out: dict[str, list[tuple[str, str]]] = {}
    for split in ("train", "test"):
        for r in _rows(folder, split):
            out.setdefault(r["classname"], []).append((r["path"], (folder / r["path"]).read_text(encoding="utf-8")))
    return out


def _synset_lemmas_at(offset: str) -> list[str]:
    """The lemmas of the record at byte `offset` of data.noun, read directly (independent of the parser)."""
    with open(DATA_NOUN, "rb") as fh:
        fh.seek(int(offset))
        fields = fh.readline().decode("utf-8").split()
    assert fields[0] == offset and fields[2] == "n"
    return [fields[4 + 2 * i] for i in range(int(fields[3], 16))]


def test_two_builds_are_byte_identical(built, tmp_path):
    again = Path(build_wordnet_sounds(tmp_path, folder_name="second")["path"])
    files = sorted(p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again).as_posix() for p in again.rglob("*") if p.is_file())
    assert all((built / f).read_bytes() == (again / f).read_bytes() for f in files)
    assert build_wordnet_sounds(built.parent)["reused"] is True  # a complete copy is kept as it is


def test_class_and_item_counts_within_bounds(built):
    recipe = load_recipe()
    items = _items_by_class(built)
    assert sorted(items) == dataset_classnames("wordnet-sounds") == recipe.classes
    assert 40 <= len(items) <= 60
    for name, members in items.items():
        assert recipe.min_items <= len(members) <= recipe.max_items, name
        n_test = sum(1 for r in _rows(built, "test") if r["classname"] == name)
        assert n_test == round(len(members) / 3), name  # the 2/3 : 1/3 split, per class
    for path, text in (m for ms in items.values() for m in ms):
        assert path.endswith(".txt") and text.endswith("\n") and text.count("\n") == 1 and len(text) > 10


def test_no_item_names_its_class_or_a_synonym(built):
    roots = dict(load_recipe().synsets)
    for name, members in _items_by_class(built).items():
        lemmas = [" ".join(l.replace("_", " ").lower().split()) for l in _synset_lemmas_at(roots[name])]
        assert name in lemmas  # the class name is one of its synset's lemmas
        for lemma in lemmas:
            words = re.escape(lemma).replace(r"\ ", r"[\s_]+")
            leak = re.compile(rf"(?<![a-z0-9]){words}(?:s|es)?(?![a-z0-9])")
            for path, text in members:
                assert not leak.search(text.lower()), (name, lemma, path, text)


def test_no_item_in_two_classes(built):
    items = _items_by_class(built)
    offsets = [Path(p).stem for ms in items.values() for p, _ in ms]
    texts = [t.lower() for ms in items.values() for _, t in ms]
    assert len(set(offsets)) == len(offsets) and len(set(texts)) == len(texts)
    assert not set(offsets) & set(dict(load_recipe().synsets).values())  # a class synset is never an item


def test_existing_readers_read_the_folder_unchanged(built):
    ds = load_dataset("wordnet-sounds", built.parent)
    assert ds.layout == "palm" and ds.classnames == dataset_classnames("wordnet-sounds")
    assert (len(ds.train), len(ds.test)) == (len(_rows(built, "train")), len(_rows(built, "test")))
    assert not {c.path for c in ds.train} & {c.path for c in ds.test}
    assert all(c.path.suffix == ".txt" and c.path.parent.parent == built for c in ds.train + ds.test)
    base, new = base_new_split(ds.classnames)
    assert len(base) == 25 and len(new) == 24
    picked = draw_fewshot([c.label for c in ds.train], shots=16, seed=1)
    assert len(picked) == 16 * len(ds.classnames)


def test_license_and_versions_written_into_the_folder(built):
    license_text = (built / "LICENSE").read_text()
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in license_text and "AS IS" in license_text
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["recipe"]["wordnet_version"] == "3.0" and manifest["recipe"]["rule_version"] == 2
    assert manifest["package"] == "wordnet-base" and not [k for k in manifest if "time" in k or "date" in k]


def test_missing_package_is_a_one_line_error_and_writes_nothing(tmp_path):
    root = tmp_path / "root"
    with pytest.raises(UserError) as e:
        build_wordnet_sounds(root, wordnet_dir=tmp_path / "no-wordnet")
    message = str(e.value)
    assert "\n" not in message and "data.noun: not found" in message and "apt-get install wordnet-base" in message
    assert not root.exists() or not any(root.iterdir())


def test_mask_removes_whole_words_plurals_and_spellings():
    p = mask_pattern(("hand_tool", "mouse", "bird_of_prey"), {"mouse": ["mice"]})
    text = "Hand tools, a hand_tool, HAND TOOL; mice and a mouse; birds of prey; handy mousetrap prey"
    assert " ".join(p.sub(" ", text).split()) == ", a , ; and a ; ; handy mousetrap prey"


def _syn(offset: str, hyponyms: tuple[str, ...] = (), lemma: str = "") -> wn.Synset:
    return wn.Synset(offset=offset, lex_filenum=5, lemmas=(lemma or f"w{offset}",), lex_ids=(0,), hypernyms=(),
                     hyponyms=hyponyms, gloss=f"gloss text of {offset}")


def test_an_item_under_two_classes_goes_to_the_more_specific_or_to_neither():
    # A ⊃ B ⊃ x;  A ⊃ y;  C ⊃ y too (two unrelated classes);  B ⊃ z
    nouns = {o: s for o, s in [("00000001", _syn("00000001", ("00000002", "00000011"), "a")),
                                ("00000002", _syn("00000002", ("00000010", "00000012"), "b")),
                                ("00000003", _syn("00000003", ("00000011",), "c")),
                                ("00000010", _syn("00000010")), ("00000011", _syn("00000011")),
                                ("00000012", _syn("00000012"))]}
    recipe = WordnetRecipe(synsets=(("a", "00000001"), ("b", "00000002"), ("c", "00000003")), min_items=1,
                           max_items=10, path="test")
    with pytest.raises(UserError, match="class 'a'.*keeps 0 items"):  # A's only own items went to B or to nobody
        select_items(nouns, recipe, {}, {})
    recipe = WordnetRecipe(synsets=(("b", "00000002"), ("c", "00000003")), min_items=1, max_items=10, path="test")
    items = select_items(nouns, recipe, {}, {})
    assert [o for o, _ in items["b"]] == ["00000010", "00000012"] and [o for o, _ in items["c"]] == ["00000011"]
    assert items["b"][0][1] == "w00000010: gloss text of 00000010"


@pytest.mark.parametrize("prepare, needle", [
    ('builder = "wordnet-sounds"\ncolour = 1\n[prepare.synsets]\na = "02084071"\n', "unknown key(s) colour"),
    ('builder = "wordnet-sounds"\n[prepare.synsets]\na = "2084071"\n', "expected an 8-digit data.noun offset"),
    ('builder = "wordnet-sounds"\n[prepare.synsets]\nb = "02084071"\n', "must be the same classes"),
    ('builder = "wordnet-sounds"\nwordnet_version = "3.1"\n[prepare.synsets]\na = "02084071"\n', "only '3.0'"),
])
def test_bad_recipes_are_one_line_errors_naming_the_file(tmp_path, prepare, needle):
    path = tmp_path / "toy.toml"
    path.write_text(f'name = "toy"\ndisplay_name = "T"\nlayout = "palm"\nclasses = ["a"]\n[prepare]\n{prepare}')
    with pytest.raises(UserError) as e:
        load_recipe(path)
    assert str(path) in str(e.value) and needle in str(e.value) and "\n" not in str(e.value)


def test_class_name_is_the_most_common_lemma_not_shared_with_another_class_or_a_hyponym():
    def syn(offset, lemmas, hyponyms=()):
        return wn.Synset(offset=offset, lex_filenum=5, lemmas=lemmas, lex_ids=(0,) * len(lemmas), hypernyms=(),
                         hyponyms=hyponyms, gloss="")

    nouns = {"00000001": syn("00000001", ("wind", "air_current", "breeze"), ("00000003",)),
             "00000002": syn("00000002", ("wind_instrument", "wind")),
             "00000003": syn("00000003", ("breeze", "zephyr"))}
    counts = {"wind%1:05:00::": 28, "breeze%1:05:00::": 3}  # air_current never tagged (0)
    chosen = {"00000001", "00000002"}
    # 'wind' is the most common but also a lemma of the other class; 'breeze' names a hyponym: next is air current
    assert class_name(nouns, "00000001", chosen, counts) == "air current"
    assert class_name(nouns, "00000002", chosen, counts) == "wind instrument"  # ties: WordNet's order
    assert class_name(nouns, "00000001", {"00000001"}, counts) == "wind"
    # every lemma taken: the most common one stays
    nouns["00000004"] = syn("00000004", ("machine",))
    nouns["00000005"] = syn("00000005", ("car", "machine"))
    assert class_name(nouns, "00000004", {"00000004", "00000005"}, counts) == "machine"


def test_a_config_name_against_the_rule_is_a_one_line_error(tmp_path):
    path = tmp_path / "toy.toml"
    path.write_text('name = "toy"\ndisplay_name = "T"\nlayout = "palm"\nclasses = ["frog"]\n[prepare]\n'
                    'builder = "wordnet-sounds"\nmin_items = 1\n[prepare.synsets]\nfrog = "01639765"\n')
    with pytest.raises(UserError, match=r"'frog' = '01639765': the naming rule gives 'toad'"):
        build_wordnet_sounds(tmp_path / "out", config=path)
    assert not (tmp_path / "out").exists()
