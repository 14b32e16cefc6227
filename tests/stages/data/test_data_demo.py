"""The demo dataset, built for real from the Debian packages sonic-pi-samples and openttd-opensfx."""
from __future__ import annotations

import csv
import io

import pytest
import soundfile as sf

from cache.errors import UserError
from data_fixtures import snapshot
from stages.data import sound_packages as pk
from stages.data.datasets import dataset_classnames, load_dataset
from stages.data.demo import DEMO_CLASSES, MAX_SECONDS, SAMPLE_RATE, build_demo


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo-data")
    result = build_demo(root, progress=False)
    assert result["reused"] is False
    return root


def test_demo_is_a_valid_palm_dataset(demo_root):
    ds = load_dataset("demo", demo_root)
    assert ds.classnames == DEMO_CLASSES == dataset_classnames("demo")
    assert ds.layout == "palm" and len(ds.train) + len(ds.test) >= 100
    for k, name in enumerate(ds.classnames):
        n_train = sum(c.label == k for c in ds.train)
        n_test = sum(c.label == k for c in ds.test)
        assert n_train >= 1 and n_test >= 1 and n_train + n_test >= 6, name
    assert not {c.path for c in ds.train} & {c.path for c in ds.test}


def test_demo_audio_format(demo_root):
    for wav in sorted((demo_root / "demo" / "audios").glob("*.wav")):
        info = sf.info(str(wav))
        assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16"), wav
        assert 0 < info.frames <= SAMPLE_RATE * MAX_SECONDS
        assert sf.read(str(wav))[0].std() > 0  # not silence


def test_attribution_covers_every_clip_and_keeps_recordings_on_one_side(demo_root):
    folder = demo_root / "demo"
    rows = list(csv.DictReader(open(folder / "attribution.csv")))
    assert sorted(r["path"] for r in rows) == sorted(f"audios/{p.name}" for p in (folder / "audios").glob("*.wav"))
    for r in rows:
        if r["package"] == pk.SONIC_PI_PACKAGE:
            assert r["license"] == "CC0" and "freesound.org" in r["credit"]
        else:
            assert r["package"] == pk.OPENSFX_PACKAGE and "License:" in r["credit"] and r["license"]
    # OpenSFX effects edited from one original recording never straddle train and test.
    clips_of: dict[str, list[str]] = {}
    for r in rows:
        if r["package"] == pk.OPENSFX_PACKAGE and 'Original "' in r["credit"]:
            clips_of.setdefault(r["credit"].split('Original "')[1].split('"')[0], []).append(r["split"])
    assert max(len(v) for v in clips_of.values()) >= 3  # e.g. file0375.mp3 behind four engine starts
    assert all(len(set(v)) == 1 for v in clips_of.values())
    assert "CC0" in (folder / "README.md").read_text()


def test_rerun_reuses_without_writing(demo_root):
    before = snapshot(demo_root / "demo")
    result = build_demo(demo_root, progress=False)
    assert result["reused"] is True and snapshot(demo_root / "demo") == before


def test_force_rebuild_is_byte_identical(tmp_path):
    first = build_demo(tmp_path, progress=False)
    csvs = {n: (tmp_path / "demo" / n).read_bytes() for n in ("train.csv", "test.csv", "attribution.csv")}
    second = build_demo(tmp_path, force=True, progress=False)
    assert second["reused"] is False and second["num_test"] == first["num_test"]
    assert {n: (tmp_path / "demo" / n).read_bytes() for n in csvs} == csvs
    assert sorted(p.name for p in tmp_path.iterdir()) == [".demo.lock", "demo"]  # no staging left behind


def test_missing_package_names_apt_get_and_writes_nothing(tmp_path):
    with pytest.raises(UserError) as e:
        build_demo(tmp_path, progress=False, sonic_pi_dir=tmp_path / "no-sonic-pi")
    assert "apt-get install sonic-pi-samples" in str(e.value) and str(tmp_path / "no-sonic-pi") in str(e.value)
    assert not (tmp_path / "demo").exists()
    with pytest.raises(UserError, match="apt-get install openttd-opensfx"):
        build_demo(tmp_path, progress=False, opensfx_cat=tmp_path / "none.cat")
    assert not (tmp_path / "demo").exists()


def test_foreign_folder_is_not_overwritten(tmp_path):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "mine.txt").write_text("keep")
    with pytest.raises(UserError, match="--force"):
        build_demo(tmp_path, progress=False)
    assert (tmp_path / "demo" / "mine.txt").read_text() == "keep"


def test_opensfx_catalogue_reader():
    effects = pk.read_opensfx()
    assert len(effects) == 71  # 73 entries, two empty placeholders
    sheep = next(e for e in effects if e.title == "Sheep")
    data, rate = sf.read(io.BytesIO(sheep.wav))
    assert rate == 44100 and len(data) > rate  # over a second of real audio
    assert "Attribution" in sheep.license or "Zero" in sheep.license
