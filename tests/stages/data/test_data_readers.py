"""load_dataset on tiny real datasets (soundfile-written sines) in each layout, and every bad input."""
from __future__ import annotations

import json

import pytest

from cache.errors import UserError
from data_fixtures import snapshot, toy_spec, write_csv, write_sine
from stages.data.clips import classes_without_train_clips
from stages.data.datasets import load_dataset
from stages.data.specs import dataset_spec, datasets_overlap


def palm_toy(folder, train=None, test=None):
    """audios/ + train.csv/test.csv; train paths relative to the folder, test paths relative to audios/."""
    train = train or [("audios/b1.wav", "bird"), ("audios/c1.wav", "car horn"), ("audios/d1.wav", "dog"),
                      ("audios/d2.wav", "dog")]
    test = test or [("b2.wav", "bird"), ("c2.wav", "car_horn"), ("d3.wav", "dog")]
    for p, _ in train:
        write_sine(folder / p)
    for p, _ in test:
        write_sine(folder / "audios" / p)
    write_csv(folder / "train.csv", train)
    write_csv(folder / "test.csv", test)
    return folder


def test_palm_layout(tmp_path, toy_configs):
    toy_configs("toy", toy_spec())
    folder = palm_toy(tmp_path / "toy")
    ds = load_dataset("toy", folder)
    assert ds.classnames == ["bird", "car horn", "dog"] and ds.layout == "palm" and ds.fold == ""
    assert [(c.path.name, c.label, c.classname) for c in ds.train] == [
        ("b1.wav", 0, "bird"), ("c1.wav", 1, "car horn"), ("d1.wav", 2, "dog"), ("d2.wav", 2, "dog")]
    # 'car_horn' in the CSV is the class 'car horn'; the test paths were relative to audios/
    assert [(c.path.name, c.label) for c in ds.test] == [("b2.wav", 0), ("c2.wav", 1), ("d3.wav", 2)]
    assert all(c.path.is_absolute() and c.path.is_file() for c in ds.train + ds.test)


@pytest.mark.parametrize("sub", ["Toy-Set", "toy", "TOY-SET"])
def test_data_root_may_be_a_parent(tmp_path, toy_configs, sub):
    toy_configs("toy", toy_spec())
    palm_toy(tmp_path / sub)
    ds = load_dataset("toy", tmp_path)
    assert ds.root == (tmp_path / sub).resolve() and len(ds.test) == 3


def test_named_sub_folder_wins_over_a_parent_that_looks_like_a_dataset(tmp_path, toy_configs):
    toy_configs("toy", toy_spec())
    palm_toy(tmp_path, train=[("audios/x.wav", "bird")], test=[("y.wav", "bird")])  # a stray dataset in the parent
    palm_toy(tmp_path / "toy")
    assert load_dataset("toy", tmp_path).root == (tmp_path / "toy").resolve()


def write_folds(folder, k=3):
    rows = {f"fold{i}": [(f"audios/f{i}_{c}.wav", c) for c in ("bird", "car horn", "dog")] for i in range(1, k + 1)}
    for name, r in rows.items():
        for p, _ in r:
            write_sine(folder / p)
        write_csv(folder / f"{name}.csv", r)
    return rows


def test_fold_csvs_test_one_fold_train_on_the_others(tmp_path, toy_configs):
    toy_configs("toy", toy_spec(folds=["fold1", "fold2", "fold3"]))
    write_folds(tmp_path)
    ds = load_dataset("toy", tmp_path, fold="fold2")
    assert ds.fold == "fold2"
    assert {c.path.name for c in ds.test} == {"f2_bird.wav", "f2_car horn.wav", "f2_dog.wav"}
    assert {c.path.name[:2] for c in ds.train} == {"f1", "f3"} and len(ds.train) == 6
    # no train.csv/test.csv on disk: fold '' means the first official fold, and says so
    assert load_dataset("toy", tmp_path).fold == "fold1"


def test_folded_dataset_never_reads_a_stray_train_csv(tmp_path, toy_configs):
    toy_configs("toy", toy_spec(folds=["fold1", "fold2"]))
    for p in ("a.wav", "b.wav", "c.wav", "stray.wav"):
        write_sine(tmp_path / "audios" / p)
    write_csv(tmp_path / "csv_files" / "train_1.csv", [("audios/a.wav", "bird"), ("audios/b.wav", "dog")])
    write_csv(tmp_path / "csv_files" / "test_1.csv", [("audios/c.wav", "dog")])
    # PALM's download also carries a top-level train.csv/test.csv: another split, never the folds'
    write_csv(tmp_path / "train.csv", [("audios/stray.wav", "bird")])
    write_csv(tmp_path / "test.csv", [("audios/stray.wav", "dog")])
    ds = load_dataset("toy", tmp_path)
    assert ds.fold == "fold1" and [c.path.name for c in ds.train] == ["a.wav", "b.wav"]
    assert [c.path.name for c in ds.test] == ["c.wav"]
    assert all(p.parent.name == "csv_files" for p in ds.sources)
    # a fold whose CSVs are absent is an error naming them, not a fall-back to train.csv
    with pytest.raises(UserError, match=r"no CSVs for fold2 .*csv_files/train_2.csv .*never falls back"):
        load_dataset("toy", tmp_path, fold="fold2")


def test_fold_names_and_overlaps_are_checked_in_dataset_configs(tmp_path, toy_configs):
    # one file name per case: specs are cached by file and mtime
    toy_configs("bad1", toy_spec(folds=["first", "second"]).replace('"toy"', '"bad1"'))
    with pytest.raises(UserError, match=r"key folds: 'first' is not a fold name \(expected 'fold1'"):
        dataset_spec("bad1")
    toy_configs("bad2", toy_spec().replace('"toy"', '"bad2"') + 'overlaps = ["esc50"]\n')
    with pytest.raises(UserError, match=r"key overlap_reason must be a non-empty string"):
        dataset_spec("bad2")
    toy_configs("toy", toy_spec() + 'overlaps = ["esc50"]\noverlap_reason = "same clips"\n')
    toy, esc50 = dataset_spec("toy"), dataset_spec("esc50")
    # declared on one side, it holds both ways
    assert datasets_overlap(toy, esc50) == "toy declares overlaps = ['esc50']: same clips"
    assert datasets_overlap(esc50, toy) == datasets_overlap(toy, esc50)
    assert "ESC-50's own" in datasets_overlap(esc50, dataset_spec("esc50-actions"))
    assert datasets_overlap(esc50, dataset_spec("urbansound8k")) == ""


def test_palm_csv_files_folds(tmp_path, toy_configs):
    toy_configs("toy", toy_spec(folds=["fold1", "fold2"]))
    for p in ("a.wav", "b.wav", "c.wav"):
        write_sine(tmp_path / "audios" / p)
    write_csv(tmp_path / "csv_files" / "train_2.csv", [("audios/a.wav", "bird"), ("audios/b.wav", "dog")])
    write_csv(tmp_path / "csv_files" / "test_2.csv", [("audios/c.wav", "dog")])
    ds = load_dataset("toy", tmp_path, fold="fold2")
    assert [c.path.name for c in ds.train] == ["a.wav", "b.wav"] and [c.path.name for c in ds.test] == ["c.wav"]


def test_esc50_own_layout_and_the_actions_subset(tmp_path):
    rows = [("1-1-A-0.wav", 1, "dog"), ("1-2-A-1.wav", 1, "chirping_birds"), ("2-1-A-2.wav", 2, "crying_baby"),
            ("2-2-A-3.wav", 2, "dog"), ("3-1-A-4.wav", 3, "sneezing")]
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "esc50.csv").write_text(
        "filename,fold,target,category,esc10,src_file,take\n"
        + "".join(f"{f},{k},0,{c},False,x,A\n" for f, k, c in rows))
    for f, _, _ in rows:
        write_sine(tmp_path / "audio" / f)
    ds = load_dataset("esc50", tmp_path, fold="fold2")
    names = ds.classnames
    assert ds.layout == "esc50" and ds.fold == "fold2"
    assert [(c.path.name, names[c.label]) for c in ds.test] == [("2-1-A-2.wav", "crying baby"), ("2-2-A-3.wav", "dog")]
    assert len(ds.train) == 3
    # ESC50-Actions reads the same folder, keeping only its 10 human-sound classes
    act = load_dataset("esc50-actions", tmp_path, fold="fold2")
    assert [c.classname for c in act.test] == ["crying baby"] and [c.classname for c in act.train] == ["sneezing"]
    assert act.classnames[act.test[0].label] == "crying baby"
    assert load_dataset("esc50", tmp_path).fold == "fold1"


def test_palm_labels_of_tut2017_load_under_spaced_names(tmp_path):
    write_sine(tmp_path / "audios" / "a.wav")
    # TUT2017 declares 4 folds: read through PALM's fold CSVs (csv_files/train_<k>.csv + test_<k>.csv)
    write_csv(tmp_path / "csv_files" / "train_1.csv", [("audios/a.wav", "city_center")])
    write_csv(tmp_path / "csv_files" / "test_1.csv", [("audios/a.wav", "cafe/restaurant")])
    ds = load_dataset("tut2017", tmp_path)
    assert ds.train[0].classname == "city center" and ds.test[0].classname == "cafe/restaurant"


def make_class_folders(root, counts):
    for cls, n in counts.items():
        for i in range(n):
            write_sine(root / cls / f"{cls}_{i}.wav")


def test_folder_per_class_split_is_deterministic_and_recorded(tmp_path, toy_configs):
    toy_configs("toy", toy_spec(layout="folder_per_class"))
    make_class_folders(tmp_path, {"bird": 10, "car_horn": 4, "dog": 1})
    ds = load_dataset("toy", tmp_path)
    record = json.loads((tmp_path / "split.json").read_text())
    per_class = {c: sum(x.classname == c for x in ds.test) for c in ds.classnames}
    assert per_class == {"bird": 3, "car horn": 1, "dog": 0}  # round(n * 0.3), >= 1 when n >= 2, never all
    assert len(ds.train) == 11 and set(record["test"]) == {c.path.relative_to(tmp_path.resolve()).as_posix()
                                                           for c in ds.test}
    again = load_dataset("toy", tmp_path)
    assert again.test == ds.test and again.train == ds.train
    # a hand-made split covering the same files is honoured ...
    record["train"], record["test"] = record["train"] + record["test"][:1], record["test"][1:]
    (tmp_path / "split.json").write_text(json.dumps(record))
    assert len(load_dataset("toy", tmp_path).test) == 3
    # ... and a new file makes it stale: recomputed, not served
    write_sine(tmp_path / "dog" / "dog_1.wav")
    ds3 = load_dataset("toy", tmp_path)
    assert len(ds3.train) + len(ds3.test) == 16 and sum(c.classname == "dog" for c in ds3.test) == 1


def test_folder_per_class_reads_txt_items_only_when_there_is_no_audio(tmp_path, toy_configs):
    toy_configs("toy", toy_spec(layout="folder_per_class"))
    texts = tmp_path / "texts"
    for cls, n in {"bird": 4, "dog": 3}.items():
        (texts / cls).mkdir(parents=True)
        for i in range(n):
            (texts / cls / f"{cls}_{i}.txt").write_text(f"item {i} of {cls}\n", encoding="utf-8")
    ds = load_dataset("toy", texts)
    assert len(ds.train) + len(ds.test) == 7 and {c.path.suffix for c in ds.train + ds.test} == {".txt"}
    assert {c.classname for c in ds.test} == {"bird", "dog"}
    # Beside audio, a .txt (notes) is not an item: audio datasets read exactly as before.
    make_class_folders(tmp_path / "audio", {"bird": 3})
    (tmp_path / "audio" / "bird" / "README.txt").write_text("recorded in 2024\n")
    audio = load_dataset("toy", tmp_path / "audio")
    assert {c.path.suffix for c in audio.train + audio.test} == {".wav"} and len(audio.train + audio.test) == 3


def test_class_without_training_clip_is_not_an_error(tmp_path, toy_configs):
    toy_configs("toy", toy_spec())
    palm_toy(tmp_path, train=[("audios/b1.wav", "bird")], test=[("x.wav", "dog")])
    ds = load_dataset("toy", tmp_path)
    assert classes_without_train_clips(ds) == ["car horn", "dog"]


# ---- bad input: one-line UserError naming the path, nothing written ------------------------------------------


def expect_error(root, needle_path, needle, fn):
    before = snapshot(root)
    with pytest.raises(UserError) as e:
        fn()
    msg = str(e.value)
    assert str(needle_path) in msg, msg
    assert needle in msg, msg
    assert "\n" not in msg
    assert snapshot(root) == before


def test_missing_folder(tmp_path, toy_configs):
    toy_configs("toy", toy_spec())
    expect_error(tmp_path, tmp_path / "nowhere", "not found", lambda: load_dataset("toy", tmp_path / "nowhere"))


def test_folder_without_the_dataset(tmp_path, toy_configs):
    toy_configs("toy", toy_spec())
    (tmp_path / "data").mkdir()
    expect_error(tmp_path, tmp_path / "data", "train.csv", lambda: load_dataset("toy", tmp_path / "data"))


def test_csv_missing_a_column(tmp_path, toy_configs):
    toy_configs("toy", toy_spec())
    palm_toy(tmp_path)
    write_csv(tmp_path / "test.csv", [("b2.wav", "bird")], header="file,classname")
    expect_error(tmp_path, tmp_path / "test.csv", "missing column(s) path", lambda: load_dataset("toy", tmp_path))


def test_unknown_class_in_csv(tmp_path, toy_configs):
    toy_configs("toy", toy_spec())
    palm_toy(tmp_path, test=[("b2.wav", "bird"), ("c2.wav", "cat")])
    expect_error(tmp_path, tmp_path / "test.csv", "class 'cat' is not a class of dataset toy",
                 lambda: load_dataset("toy", tmp_path))


def test_unknown_class_folder(tmp_path, toy_configs):
    toy_configs("toy", toy_spec(layout="folder_per_class"))
    make_class_folders(tmp_path, {"bird": 2, "cat": 2})
    expect_error(tmp_path, tmp_path / "cat", "class 'cat'", lambda: load_dataset("toy", tmp_path))


def test_missing_audio_file(tmp_path, toy_configs):
    toy_configs("toy", toy_spec())
    palm_toy(tmp_path)
    (tmp_path / "audios" / "c2.wav").unlink()
    (tmp_path / "audios" / "d3.wav").unlink()
    expect_error(tmp_path, tmp_path / "test.csv", "'c2.wav' not found", lambda: load_dataset("toy", tmp_path))
    with pytest.raises(UserError, match=r"and 1 more missing"):
        load_dataset("toy", tmp_path)


def test_empty_csv(tmp_path, toy_configs):
    toy_configs("toy", toy_spec())
    palm_toy(tmp_path)
    (tmp_path / "test.csv").write_text("path,classname\n")
    expect_error(tmp_path, tmp_path / "test.csv", "has no rows", lambda: load_dataset("toy", tmp_path))


def test_empty_class_folders(tmp_path, toy_configs):
    toy_configs("toy", toy_spec(layout="folder_per_class"))
    (tmp_path / "bird").mkdir()
    expect_error(tmp_path, tmp_path, "no audio files", lambda: load_dataset("toy", tmp_path))


def test_unknown_fold(tmp_path, toy_configs):
    toy_configs("toy", toy_spec(folds=["fold1", "fold2"]))
    write_folds(tmp_path, k=2)
    with pytest.raises(UserError, match=r"fold 'fold7'.*accepted: fold1, fold2"):
        load_dataset("toy", tmp_path, fold="fold7")


def test_missing_other_fold_csv(tmp_path, toy_configs):
    toy_configs("toy", toy_spec(folds=["fold1", "fold2", "fold3"]))
    write_folds(tmp_path, k=3)
    (tmp_path / "fold3.csv").unlink()
    expect_error(tmp_path, tmp_path / "fold3.csv", "not found", lambda: load_dataset("toy", tmp_path, fold="fold1"))
