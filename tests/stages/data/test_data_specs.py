"""Dataset configs: the 11 benchmark datasets + demo, their class counts and folds, and spec validation."""
from __future__ import annotations

import pytest

from cache.errors import UserError
from stages.data.demo import DEMO_CLASSES
from stages.data.specs import dataset_classnames, dataset_spec, list_datasets, normalize_label

# docs/method.md, "Protocols" (PALM's suite), written out here so a config edit cannot silently change a count.
DESIGN_CLASS_COUNTS = {
    "beijing-opera": 4, "crema-d": 6, "esc50": 50, "esc50-actions": 10, "gt-music-genre": 10,
    "ns-instruments": 10, "ravdess": 8, "sesa": 4, "tut2017": 15, "urbansound8k": 10, "vocalsound": 6,
}
# docs/method.md, "Protocols": official folds (ESC50-Actions inherits ESC-50's five, as in PALM's logs).
DESIGN_FOLDS = {"esc50": 5, "esc50-actions": 5, "urbansound8k": 10, "tut2017": 4, "beijing-opera": 5}


def test_every_benchmark_dataset_and_the_demo_are_configured():
    assert set(list_datasets()) >= set(DESIGN_CLASS_COUNTS) | {"demo"}


@pytest.mark.parametrize("name, count", sorted(DESIGN_CLASS_COUNTS.items()))
def test_class_counts_match_design(name, count):
    spec = dataset_spec(name)
    assert spec.num_classes == count == len(dataset_classnames(name))
    assert spec.source and spec.display_name and spec.layout == "palm"
    # PALM's label order is its sorted class list; ours is the same.
    assert list(spec.classes) == sorted(spec.classes)
    assert len(spec.folds) == DESIGN_FOLDS.get(name, 0)


def test_tut2017_spaces_keep_palms_underscore_order():
    spaced = dataset_classnames("tut2017")
    palm = [c.replace(" ", "_") for c in spaced]  # PALM's spelling: 'city_center'
    assert [c.replace("_", " ") for c in sorted(palm)] == sorted(spaced) == spaced
    spec = dataset_spec("tut2017")
    assert spec.class_index("city_center") == spaced.index("city center")


def test_some_exact_names():
    assert dataset_classnames("esc50")[:3] == ["airplane", "breathing", "brushing teeth"]
    assert "synth_lead" not in dataset_classnames("ns-instruments")
    assert dataset_classnames("vocalsound")[-1] == "Throat clearing"
    assert dataset_spec("vocalsound").class_index("throatclearing") == 5
    assert dataset_spec("crema-d").class_index("ANG") == 0
    assert dataset_spec("esc50").class_index("chirping_birds") == dataset_classnames("esc50").index("chirping birds")
    assert set(dataset_classnames("esc50-actions")) <= set(dataset_classnames("esc50"))


def test_demo_config_matches_the_recipe():
    assert dataset_classnames("demo") == DEMO_CLASSES


def test_names_are_case_insensitive_like_palms_folders():
    assert dataset_spec("ESC50-Actions").name == "esc50-actions"
    assert dataset_spec("UrbanSound8K").name == "urbansound8k"


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(UserError) as e:
        dataset_spec("esc-51")
    assert "esc-51" in str(e.value) and "esc50" in str(e.value)


def test_spec_by_path_and_user_folder(toy_configs, tmp_path):
    p = toy_configs("toy", 'name = "toy"\ndisplay_name = "Toy"\nlayout = "palm"\nclasses = ["b", "a"]\n')
    assert dataset_spec(str(p)).classes == ("b", "a")
    assert "toy" in list_datasets() and dataset_classnames("toy") == ["b", "a"]


@pytest.mark.parametrize("body, needle", [
    ('name = "bad"\ndisplay_name = "B"\nlayout = "palm"\nclasses = ["a"]\ncolour = 1\n', "unknown key(s) colour"),
    ('name = "bad"\ndisplay_name = "B"\nlayout = "palm"\nclasses = ["dog_bark", "dog bark"]\n', "same name"),
    ('name = "bad"\ndisplay_name = "B"\nlayout = "zip"\nclasses = ["a"]\n', "layout 'zip'"),
    ('name = "bad"\ndisplay_name = "B"\nlayout = "palm"\nclasses = []\n', "classes is empty"),
    ('name = "other"\ndisplay_name = "B"\nlayout = "palm"\nclasses = ["a"]\n', "must equal"),
    ('name = "bad"\ndisplay_name = "B"\nlayout = "palm"\nclasses = ["a"]\n[aliases]\nx = "zz"\n', "not in classes"),
    ('name = "bad"\ndisplay_name = "B"\nclasses = ["a"]\n', "missing key layout"),
    ('name = "bad\n', "not valid TOML"),
    ('name = "bad"\ndisplay_name = "B"\nlayout = "palm"\nclasses = ["a"]\nprepare = 3\n', "[prepare] must be a table"),
    ('name = "bad"\ndisplay_name = "B"\nlayout = "palm"\nclasses = ["a"]\ntemplate = "a sound"\n',
     "key template 'a sound' must be a string with exactly one '{}'"),
])
def test_bad_specs_are_one_line_errors_naming_the_file(toy_configs, body, needle):
    p = toy_configs("bad", body)
    with pytest.raises(UserError) as e:
        dataset_spec("bad")
    msg = str(e.value)
    assert str(p) in msg and needle in msg and "\n" not in msg


def test_normalize_label():
    assert normalize_label(" Door_Wood  creaks ") == "door wood creaks"


# jhyukjang/SubT at 08d3d21c004d41678b1760dc1b3bfc67bce517a0, trainers/template.py DATASET_TEMPLATE, copied:
SUBT_TEMPLATES = {
    "Beijing-Opera": "This is a sound of {} being played.", "NS-Instruments": "This is a sound of {} being played.",
    "CREMA-D": "This is a human vocal sound of {} speech.", "RAVDESS": "This is a human vocal sound of {} speech.",
    "ESC50-Actions": "This is a characteristic sound of {}.", "ESC50": "This is a characteristic sound of {}.",
    "UrbanSound8K": "This is a characteristic sound of {}.", "GT-Music-Genre": "This is {} music.",
    "TUT2017": "This is a sound of {}.", "SESA": "This is a sound of {}.", "VocalSound": "This is a human vocal sound of {}.",
}


def test_every_benchmark_dataset_carries_subts_template_and_the_others_none():
    by_folder = {dataset_spec(n).folder: dataset_spec(n) for n in list_datasets()}
    assert set(SUBT_TEMPLATES) <= set(by_folder)
    for folder, template in SUBT_TEMPLATES.items():
        assert by_folder[folder].template == template, folder
    assert dataset_spec("demo").template == "" and dataset_spec("wordnet-sounds").template == ""
