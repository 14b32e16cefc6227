"""The run record (pipeline/protocols/record.py) and the protocol table (pipeline/protocols/table.py): what a
metrics.json holds, how it reads back, what is refused, and that a protocol name is spelled in one place."""
from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest

from pipeline.protocols.record import (MANIFEST_KEYS, Base2NewResult, CrossResult, FewshotResult, RecordError,
                                       RunRecord, build_manifest)
from pipeline.protocols.table import PROTOCOLS, protocol_info
from record_kit import default_config, make_record

ROOT = Path(__file__).resolve().parents[2]
# The keys agreed between the training and the record changes, with their defaults: the manifest records them.
AGREED = {"train.tower_mode": "eval", "data.channels": "mean", "train.eval_crop": "fixed", "train.select": "last",
          "data.split_rule": "sorted", "text.dataset_template": False}


@pytest.mark.parametrize("kw", [
    dict(protocol="base2new", base=70.0, new=40.0),
    dict(protocol="fewshot", acc=55.5, macro_f1=50.25),
    dict(protocol="cross", dataset="esc50", source=91.0, targets={"urbansound8k": 50.0, "vocalsound": 30.0},
         overlapping={"esc50-actions": 88.0}, excluded={"esc50-actions": "shares clips"},
         class_overlaps={"urbansound8k": [["dog", "dog bark"]]}),
])
def test_a_record_round_trips_through_json(kw):
    record = make_record(**kw)
    again = RunRecord.from_json(record.to_json(), "metrics.json")
    assert again == record
    assert again.to_json() == record.to_json()


def test_the_protocol_names_the_result_type_and_its_derived_numbers():
    b2n = make_record(base=60.0, new=40.0).to_dict()
    assert isinstance(RunRecord.from_dict(b2n, "x").result, Base2NewResult)
    assert b2n["hm"] == pytest.approx(48.0) and b2n["base_acc"] == 60.0 and b2n["new"]["acc"] == 40.0
    cross = make_record(protocol="cross", source=90.0, targets={"a": 50.0, "b": 30.0}).to_dict()
    assert isinstance(RunRecord.from_dict(cross, "x").result, CrossResult)
    assert cross["mean_acc"] == pytest.approx(40.0) and cross["source_acc"] == 90.0
    fewshot = make_record(protocol="fewshot", acc=55.0).to_dict()
    assert isinstance(RunRecord.from_dict(fewshot, "x").result, FewshotResult) and fewshot["acc"] == 55.0
    # The same keys under another protocol are not guessed into a result: the protocol decides.
    with pytest.raises(RecordError, match="missing key 'base'"):
        RunRecord.from_dict({**fewshot, "protocol": "base2new"}, "x")
    assert make_record(base=60.0, new=40.0).headline() == {"base_acc": 60.0, "new_acc": 40.0, "hm": 48.0}


@pytest.mark.parametrize("change, reason", [
    (lambda d: d.pop("schema_version"), "predates the run record (no schema_version)"),
    (lambda d: d.update(schema_version=2), "schema_version 2 is not one this sept-pipeline reads"),
    (lambda d: d.update(protocol="sideways"), "key 'protocol' is 'sideways'"),
    (lambda d: d.pop("started_at"), "missing key 'started_at'"),
    (lambda d: d.update(seed="1"), "key 'seed': expected int, got str '1'"),
    (lambda d: d["base"].update(acc=float("nan")), "key 'base.acc': expected a finite number, got nan"),
    (lambda d: d.update(hm=12.0), "key 'hm' is 12.0, but its parts give 48.0"),
    (lambda d: d["manifest"].pop("train.tower_mode"), "the manifest lacks train.tower_mode"),
    (lambda d: d["manifest"].update({"data.seed": 9}), "manifest data.seed = 9 disagrees with the record's 1"),
])
def test_an_unusable_record_is_one_line_naming_the_file(tmp_path: Path, change, reason):
    data = make_record(base=60.0, new=40.0).to_dict()
    change(data)
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError) as e:
        RunRecord.read(path)
    assert str(e.value).startswith(f"{path}: ") and reason in str(e.value) and "\n" not in str(e.value)


def test_a_metrics_file_of_the_old_shape_says_what_to_do(tmp_path: Path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"protocol": "base2new", "dataset": "demo", "method": "coop", "seed": 1, "shots": 16,
                                "base_acc": 60.0, "new_acc": 40.0, "hm": 48.0, "sept": {"enabled": False}}))
    with pytest.raises(RecordError, match=r"predates the run record .* rerun that run \(`tune --force`\)"):
        RunRecord.read(path)


def test_the_manifest_is_built_from_the_declared_keys_read_from_the_config():
    cfg = default_config()
    facts = {"data.folds": ["fold1"], "precision.autocast": "off", "sept.generation_used": ""}
    manifest = build_manifest(cfg, facts)
    assert list(manifest) == [mk.key for mk in MANIFEST_KEYS]
    for key, default in AGREED.items():
        section, name = key.split(".")
        assert manifest[key] == getattr(getattr(cfg, section), name) == default, key
    assert manifest["sept.generation"] == "auto"
    assert manifest["recipe.name"] == "palm" and manifest["backbone.dtype"] == "float32"
    assert manifest["text.templates"] == list(cfg.text.templates) and manifest["data.folds"] == ["fold1"]

    # The key is read from the config as it is, never defaulted.
    class Train:
        tower_mode = "train"

        def __getattr__(self, name):
            return getattr(cfg.train, name)

    class Config:
        def __init__(self, train):
            self.train = train

        def __getattr__(self, name):
            return getattr(cfg, name)

    assert build_manifest(Config(Train()), facts)["train.tower_mode"] == "train"
    with pytest.raises(KeyError, match="manifest key train.select: not in the config"):  # the first train key
        build_manifest(Config(object()), facts)
    assert build_manifest(cfg.replace("sept", enabled=True), facts)["sept.enabled"] is True
    with pytest.raises(KeyError, match="precision.autocast"):
        build_manifest(cfg, {"data.folds": []})


def test_every_agreed_protocol_key_is_in_the_manifest():
    keys = {mk.key for mk in MANIFEST_KEYS}
    assert set(AGREED) <= keys
    assert {"data.fold", "data.folds", "data.seed", "data.shots", "data.eval_split", "recipe.name", "train.amp",
            "backbone.dtype", "text.templates", "train.random_crop", "sept.boundary_filter",
            "sept.generation"} <= keys


def test_protocol_table():
    assert list(PROTOCOLS) == ["base2new", "cross", "fewshot"]
    for p in PROTOCOLS.values():
        fields = {f.name for f in dataclasses.fields(p.result_type())} | set(p.result_type().DERIVED)
        assert set(p.headline) <= fields, p.name
        assert callable(p.plan_builder())
    assert [p.name for p in PROTOCOLS.values() if p.unseen] == ["base2new", "cross"]
    assert protocol_info("base2new").validation_builder() is not None
    with pytest.raises(Exception, match="--protocol 'sideways': unknown"):
        protocol_info("sideways")


def test_protocol_names_are_spelled_only_in_the_protocol_table():
    """No module dispatches on a protocol's name written out: they use the table's constants."""
    allowed = {ROOT / "pipeline/protocols/table.py",
               ROOT / "stages/data/fewshot.py"}  # its "fewshot" is the folder of few-shot draws, not the protocol
    found = []
    for package in ("pipeline", "stages", "cache"):
        for path in (ROOT / package).rglob("*.py"):
            if path in allowed:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Constant) and node.value in PROTOCOLS:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert not found, found
