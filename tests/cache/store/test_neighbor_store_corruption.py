"""Damaged files: a one-line UserError naming the file, nothing in the store touched; verify() lists
the damage; repair() sets it aside so a rerun regenerates exactly what was lost."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from cache.errors import UserError
from cache.store import NeighborStore
from neighbor_store_kit import ENCODER, TEMPLATES, embed, provenance, snapshot, write_loop

KEY = provenance().generation_key
CLASSES = list(range(12))


@pytest.fixture
def filled(store) -> NeighborStore:
    write_loop(str(store.root), CLASSES, batch=4)
    assert store.verify() == []
    return store


def _state(store: NeighborStore) -> dict[str, bytes]:
    return {p.relative_to(store.root).as_posix(): p.read_bytes() for p in store.root.rglob("*") if p.is_file()}


def _part(store: NeighborStore, table: str) -> str:
    manifest = json.loads((store.root / "manifest.json").read_text())
    return next(p["file"] for p in manifest["parts"] if p["table"] == table)


def _flip_middle(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x55
    path.write_bytes(bytes(data))


def _assert_one_line_naming(err: pytest.ExceptionInfo, rel: str) -> None:
    msg = str(err.value)
    assert rel in msg and "\n" not in msg and "neighbors verify" in msg
    assert err.value.exit_code == 2


def test_flipped_byte_in_embeddings_is_caught_on_read(filled):
    rel = _part(filled, "embeddings")
    _flip_middle(filled.root / rel)  # middle of incompressible float pages: the page CRC catches it
    before = _state(filled)
    with pytest.raises(UserError) as err:
        filled.get_embeddings(["class 001"], TEMPLATES, ENCODER)
    _assert_one_line_naming(err, rel)
    with pytest.raises(UserError) as err:
        filled.put_embeddings(["new text"], TEMPLATES, ENCODER, embed(["new text"]))
    _assert_one_line_naming(err, rel)
    assert _state(filled) == before
    assert filled.get_phrases(["class 001"], KEY)  # other tables still read
    problems = filled.verify()
    assert len(problems) == 1 and rel in problems[0] and "sha256" in problems[0]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete"])
def test_damaged_classes_part_stops_reads_and_writes(filled, damage):
    rel = _part(filled, "classes")
    path = filled.root / rel
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:-40])
    elif damage == "garbage":
        path.write_bytes(b"\x00garbage" * (path.stat().st_size // 8) + b"\x00" * (path.stat().st_size % 8))
    else:
        path.unlink()
    before = _state(filled)
    with pytest.raises(UserError) as err:
        filled.classes_present(["class 000"], KEY)
    _assert_one_line_naming(err, rel)
    with pytest.raises(UserError) as err:
        write_loop(str(filled.root), [40, 41])
    _assert_one_line_naming(err, rel)
    assert _state(filled) == before
    assert any(rel in p for p in filled.verify())


def test_damaged_index_is_caught_by_search_only(filled):
    (entry,) = filled.indexes(ENCODER)
    _flip_middle(filled.root / entry.file)
    before = _state(filled)
    with pytest.raises(UserError) as err:
        filled.search(ENCODER, np.ones(16), k=3)
    _assert_one_line_naming(err, entry.file)
    assert filled.get_embeddings(["class 001"], TEMPLATES, ENCODER).shape == (1, 3, 16)
    assert _state(filled) == before
    assert any(entry.file in p for p in filled.verify())


def test_damaged_index_mapping_is_caught(filled):
    (entry,) = filled.indexes(ENCODER)
    (filled.root / entry.texts_file).write_bytes(b"not parquet")
    with pytest.raises(UserError) as err:
        filled.nearest(ENCODER, ["class 001"], k=3)
    _assert_one_line_naming(err, entry.texts_file)


@pytest.mark.parametrize(
    "content", [b"{not json", b"[]", b'{"schema_version": 1}', b'{"schema_version": 99, "parts": []}']
)
def test_damaged_manifest_is_named(filled, content):
    (filled.root / "manifest.json").write_bytes(content)
    before = _state(filled)
    for call in (
        lambda: filled.get_phrases(["class 000"], KEY),
        lambda: write_loop(str(filled.root), [50]),
        filled.summary,
    ):
        with pytest.raises(UserError, match="manifest.json") as err:
            call()
        assert "\n" not in str(err.value)
    assert _state(filled) == before
    (problem,) = filled.verify()
    assert "manifest.json" in problem


def test_deleted_manifest_with_data_is_refused_not_wiped(filled):
    (filled.root / "manifest.json").unlink()
    before = _state(filled)
    with pytest.raises(UserError, match="manifest.json is missing"):
        write_loop(str(filled.root), [50])
    assert _state(filled) == before
    assert "missing" in filled.verify()[0]


def test_repair_then_rerun_restores_the_uninterrupted_store(filled, tmp_path):
    reference = NeighborStore(tmp_path / "reference")
    write_loop(str(reference.root), CLASSES, batch=4)
    phr, emb = _part(filled, "phrases"), _part(filled, "embeddings")
    _flip_middle(filled.root / emb)
    (filled.root / phr).write_bytes(b"garbage")
    actions = filled.repair()
    assert any(phr in a for a in actions) and any(emb in a for a in actions)
    assert (filled.root / "damaged" / phr).exists()  # kept aside for inspection
    assert filled.verify() == []
    # The classes whose phrases were lost are no longer "present": a rerun regenerates them.
    lost = {c for c in (f"class {i:03d}" for i in CLASSES)} - filled.classes_present(
        [f"class {i:03d}" for i in CLASSES], KEY
    )
    assert lost
    write_loop(str(filled.root), CLASSES, batch=4)
    assert filled.verify() == []
    assert snapshot(filled.root) == snapshot(reference.root)


def test_repair_of_a_clean_store_changes_nothing(filled):
    before = _state(filled)
    assert filled.repair() == []
    assert _state(filled) == before


def test_verify_reports_duplicates_written_behind_the_stores_back(filled):
    # Simulate an outside tool that copied a part and registered it twice (no API can do this).
    manifest = json.loads((filled.root / "manifest.json").read_text())
    part = next(p for p in manifest["parts"] if p["table"] == "classes")
    copy = dict(part, file=part["file"].replace("part-", "part-copy-"))
    shutil.copy(filled.root / part["file"], filled.root / copy["file"])
    manifest["parts"].append(copy)
    (filled.root / "manifest.json").write_text(json.dumps(manifest))
    problems = filled.verify()
    assert problems and all("duplicate status rows" in p for p in problems)
    filled.repair()
    assert filled.verify() == []


def test_check_files_names_a_damaged_file_the_run_relies_on_and_only_those(filled):
    from cache.store.verify import check_files

    check_files(filled, KEY, ENCODER, TEMPLATES)  # an intact store passes
    rel = _part(filled, "embeddings")
    _flip_middle(filled.root / rel)
    with pytest.raises(UserError) as err:
        check_files(filled, KEY, ENCODER, TEMPLATES)
    _assert_one_line_naming(err, rel)
    check_files(filled, KEY, "another-encoder", TEMPLATES)  # that encoder relies on none of the damaged files
