"""`neighbors export|import|encode|control` through the CLI, on a real store (Parquet, FAISS, manifest) filled with
the tiny random CLAP's own frozen text embeddings, and `tune --sept` on what they store.

The tiny CLAP does not separate texts (cosine 0.999 between any two), so the near-duplicate filter is off on
every import here and says why; the filter's own rule is tested on hand-made geometry in
tests/stages/neighbors/test_lists.py.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from cli_kit import cli_env, run_in_process, run_subprocess

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "stages" / "tuning"))
from tuning_kit import CLASSES, NEIGHBORS, TEMPLATES, fill_store, frozen_template_embeddings, write_dataset  # noqa

ROOT = Path(__file__).resolve().parents[3]
TPL = ["--set", "text.templates=" + json.dumps(TEMPLATES)]
FAST = ["--set", "train.epochs=1", "--set", "train.warmup_epochs=0", "--set", "method.n_ctx=4", *TPL,
        "--set", "backbone.device=cpu"]


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_clap_dir, tiny_backbone):
    """A cache whose store holds the tuning kit's neighbors under one LLM-like generation named 'real'."""
    from cache.store import NeighborStore

    root = tmp_path_factory.mktemp("lists")
    cache = root / "cache"
    key = fill_store(cache, tiny_backbone, TEMPLATES)
    NeighborStore.in_cache(cache).name_generation("real", key)
    data = root / "data"
    spec = write_dataset(data)
    return {"root": root, "cache": cache, "key": key, "model": tiny_clap_dir, "spec": spec, "data": data}


def store_of(cache: Path):
    from cache.store import NeighborStore

    return NeighborStore.in_cache(cache)


def snapshot(cache: Path) -> dict:
    """Every file of the store and its bytes' hash: what 'untouched' means."""
    root = cache / "neighbors"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


def tune(world, out: Path, *extra) -> dict:
    code, stdout, err = run_in_process("tune", "--dataset", world["spec"], "--data-root", world["data"], "--method",
                                       "coop", "--sept", "--protocol", "base2new", "--seed", 0, "--shots", 2,
                                       "--backbone", world["model"], "--cache-dir", world["cache"], *FAST, "--out", out,
                                       *extra, "--json")
    assert code == 0, err
    return json.loads(stdout)


def test_export_writes_each_format_with_a_provenance_sidecar(world, tmp_path, tiny_backbone):
    expected = {c: NEIGHBORS[c] for c in sorted(NEIGHBORS)}
    code, out, err = run_in_process("neighbors", "export", "--generation", "real", "--out", tmp_path / "n.json",
                                    "--cache-dir", world["cache"], "--json")
    assert code == 0, err
    assert json.loads((tmp_path / "n.json").read_text()) == expected
    side = json.loads((tmp_path / "n.json.provenance.json").read_text())
    summary = json.loads(out)
    assert summary.pop("file") == str(tmp_path / "n.json") and summary.pop("provenance_file").endswith(
        "n.json.provenance.json")
    assert summary == side
    assert side["generation_key"] == world["key"] and side["names"] == ["real"] and side["llm_id"] == "test-llm"
    assert side["classes"] == len(NEIGHBORS) and side["phrases"] == sum(map(len, NEIGHBORS.values()))
    assert side["file_sha256"] == hashlib.sha256((tmp_path / "n.json").read_bytes()).hexdigest()
    assert side["prompt_hash"] == "test" and side["first_created_at"] <= side["last_created_at"]
    assert side["format"] == "json" and side["sampling"] == {"temperature": 0.0}
    assert side["embeddings"] == []  # the peers' shape: phrases only

    assert run_in_process("neighbors", "export", "--format", "jsonl", "--generation", world["key"], "--out",
                          tmp_path / "n.jsonl", "--cache-dir", world["cache"])[0] == 0
    rows = [json.loads(x) for x in (tmp_path / "n.jsonl").read_text().splitlines()]
    assert rows == [{"class": c, "phrase": p} for c, ps in expected.items() for p in ps]

    assert run_in_process("neighbors", "export", "--format", "parquet", "--generation", "real", "--out",
                          tmp_path / "n.parquet", "--cache-dir", world["cache"])[0] == 0
    table = pq.read_table(tmp_path / "n.parquet")
    assert table.select(["class", "phrase", "rank"]).to_pylist() == [
        {"class": c, "phrase": p, "rank": k} for c, ps in expected.items() for k, p in enumerate(ps)]
    # Each row carries the stored vectors of its class name and its phrase, per encoder and template, bit-exact.
    fp = tiny_backbone.fingerprint
    store = store_of(world["cache"])
    for column, text_column in (("class_embeddings", "class"), ("phrase_embeddings", "phrase")):
        for row in table.select([text_column, column]).to_pylist():
            entries = {e["template"]: np.array(e["vector"], np.float32) for e in row[column]}
            assert {e["encoder_fingerprint"] for e in row[column]} == {fp} and sorted(entries) == sorted(TEMPLATES)
            want = store.get_embeddings([row[text_column]], TEMPLATES, fp)[0]
            assert np.array_equal(np.stack([entries[t] for t in TEMPLATES]).view(np.uint32), want.view(np.uint32))
    side = json.loads((tmp_path / "n.parquet.provenance.json").read_text())
    assert side["embeddings"] == [{"encoder_fingerprint": fp, "dim": tiny_backbone.embed_dim,
                                   "templates": sorted(TEMPLATES), "texts": len(CLASSES) + len(
                                       {p for ps in NEIGHBORS.values() for p in ps})}]

    code, out, _ = run_in_process("neighbors", "export", "--generation", "real", "--cache-dir", world["cache"])
    assert code == 0 and json.loads(out) == expected  # standard output, for a pipe


@pytest.mark.parametrize("fmt", ["json", "jsonl", "parquet"])
def test_export_then_import_gives_the_same_phrases_and_bit_identical_embeddings(world, tmp_path, fmt):
    """In the store it came from, an imported copy of a generation reads the very rows the original reads (the
    store keys embeddings by text, template and encoder): nothing is encoded again, every bit is the same."""
    f = tmp_path / f"n.{fmt}"
    assert run_in_process("neighbors", "export", "--format", fmt, "--generation", "real", "--out", f,
                          "--cache-dir", world["cache"])[0] == 0
    code, out, err = run_in_process("neighbors", "import", f, "--name", f"copy-{fmt}", "--backbone", world["model"],
                                    "--cache-dir", world["cache"], *TPL, "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["texts_encoded"] == 0 and s["dropped"] == {} and s["format"] == fmt
    assert s["file_sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    store = store_of(world["cache"])
    assert store.names()[f"copy-{fmt}"] == s["generation_key"] != world["key"]
    assert store.get_phrases(CLASSES, s["generation_key"]) == store.get_phrases(CLASSES, world["key"])
    texts = CLASSES + [p for c in CLASSES for p in NEIGHBORS[c]]
    fp = s["encoder_fingerprint"]
    before = store.get_embeddings(texts, TEMPLATES, fp)
    assert np.array_equal(before.view(np.uint32), store.get_embeddings(texts, TEMPLATES, fp).view(np.uint32))
    row = next(r for r in store.generation_keys() if r["generation_key"] == s["generation_key"])
    assert (row["engine"], row["llm_id"], row["prompt_version"]) == ("imported", "unlabelled", "imported")
    assert row["llm_fingerprint"] == f"sha256:{s['file_sha256']}"


def test_a_pipe_into_a_fresh_store_reencodes_the_same_phrases(world, tmp_path, tiny_backbone):
    """`export | import -` onto another machine's empty cache: JSON Lines carries phrases only, so the same phrases
    come back and are encoded again by the backbone's own frozen tower (checked against its forward; a different
    batch composition moves the last bit or two of float32, so the comparison there is to 1e-6, not bitwise: the
    Parquet export is the bit-exact way, tested below)."""
    code, out, _ = run_in_process("neighbors", "export", "--format", "jsonl", "--generation", "real",
                                  "--cache-dir", world["cache"])
    assert code == 0
    fresh = tmp_path / "fresh"
    code, out, err = run_in_process("neighbors", "import", "-", "--name", "piped", "--backbone", world["model"],
                                    "--cache-dir", fresh, *TPL, "--json", input=out)
    assert code == 0, err
    s = json.loads(out)
    store = store_of(fresh)
    assert store.get_phrases(CLASSES, s["generation_key"]) == {c: NEIGHBORS[c] for c in CLASSES}
    texts = CLASSES + [p for c in CLASSES for p in NEIGHBORS[c]]
    assert s["texts_encoded"] == len(texts) and s["texts_adopted"] == 0 and s["file"] == "<stdin>"
    assert s["file_vectors"].startswith("none: the file carries phrases only") and "note:" not in err
    got = store.get_embeddings(texts, TEMPLATES, tiny_backbone.fingerprint)
    np.testing.assert_allclose(got, frozen_template_embeddings(tiny_backbone, texts, TEMPLATES), rtol=0, atol=1e-6)
    assert not store.verify()


def export_parquet(cache: Path, out: Path, generation: str = "real") -> Path:
    code, _, err = run_in_process("neighbors", "export", "--format", "parquet", "--generation", generation,
                                  "--out", out, "--cache-dir", cache)
    assert code == 0, err
    return out


def test_a_parquet_export_into_a_fresh_store_is_bit_identical_and_trains(world, tmp_path, tiny_backbone):
    """The store is the contract between the stages: a generation exported as Parquet from one store and imported
    into an empty one (another machine) gives the same phrases and, because the file carries the stored vectors
    and the encoder's fingerprint matches, the very same embedding bits; and the copy trains."""
    f = export_parquet(world["cache"], tmp_path / "real.parquet")
    fresh = tmp_path / "fresh"
    code, out, err = run_in_process("neighbors", "import", f, "--name", "moved", "--backbone", world["model"],
                                    "--cache-dir", fresh, *TPL, "--json")
    assert code == 0, err
    s = json.loads(out)
    texts = CLASSES + [p for c in CLASSES for p in NEIGHBORS[c]]
    assert s["texts_encoded"] == 0 and s["texts_adopted"] == len(set(texts)) and s["dropped"] == {}
    assert s["file_vectors"].startswith("adopted: ") and "note:" not in err
    a, b = store_of(world["cache"]), store_of(fresh)
    assert b.get_phrases(CLASSES, s["generation_key"]) == a.get_phrases(CLASSES, world["key"])
    fp = tiny_backbone.fingerprint
    assert np.array_equal(b.get_embeddings(texts, TEMPLATES, fp).view(np.uint32),
                          a.get_embeddings(texts, TEMPLATES, fp).view(np.uint32))
    assert not b.verify()
    m = tune({**world, "cache": fresh}, tmp_path / "run", "--set", "sept.generation=moved")
    assert m["fingerprints"]["store"]["generation_name"] == "moved"
    assert m["fingerprints"]["store"]["neighbors_per_class"] == {c: len(NEIGHBORS[c]) for c in CLASSES[:3]}


def test_a_parquet_export_for_another_encoder_is_encoded_again_and_says_so(world, tmp_path):
    """The file's vectors belong to the encoder that made them: for another fingerprint (the same weights in another
    folder) the texts are encoded by the target's own tower, and one line says why the file's were not used."""
    import shutil

    f = export_parquet(world["cache"], tmp_path / "real.parquet")
    model = tmp_path / "tiny-clap-elsewhere"
    shutil.copytree(world["model"], model)
    code, out, err = run_in_process("neighbors", "import", f, "--name", "moved", "--backbone", model,
                                    "--cache-dir", tmp_path / "fresh", *TPL, "--json")
    assert code == 0, err
    s = json.loads(out)
    texts = set(CLASSES + [p for c in CLASSES for p in NEIGHBORS[c]])
    assert s["texts_adopted"] == 0 and s["texts_encoded"] == len(texts)
    notes = [x for x in err.splitlines() if x.startswith("note:")]
    assert len(notes) == 1 and "re-encoded" in notes[0] and str(f) in notes[0], err
    carried = s["file_vectors_carried"][0]["encoder_fingerprint"]
    assert carried in notes[0] and s["encoder_fingerprint"] in notes[0] and carried != s["encoder_fingerprint"]


def _bad_vectors(table, case: str):
    """`table` (an exported Parquet table) with its phrase_embeddings spoiled as `case` says."""
    import pyarrow as pa

    rows = table.to_pylist()
    first = rows[0]["phrase_embeddings"][0]
    if case == "wrong type":
        return table.set_column(table.column_names.index("phrase_embeddings"), "phrase_embeddings",
                                pa.array([[1.0]] * len(rows), pa.list_(pa.float64())))
    if case == "not unit":
        first["vector"] = [2 * x for x in first["vector"]]
    elif case == "another length":
        first["vector"] = first["vector"][:-1]
    elif case == "NaN":
        first["vector"] = [float("nan")] + first["vector"][1:]
    elif case == "one text, two vectors":  # the same (encoder, template) again, other bits (still a unit vector)
        rows[0]["phrase_embeddings"].append({**first, "vector": list(reversed(first["vector"]))})
    return pa.Table.from_pylist(rows, schema=table.schema)


BAD_VECTORS = {
    "wrong type": "wrong shape: Parquet column phrase_embeddings is list<",
    "not unit": "not a finite unit vector (norm 2",
    "another length": "vector; this encoder's other vectors are",
    "NaN": "not a finite unit vector (norm nan)",
    "one text, two vectors": "carried twice with different values",
}


@pytest.mark.parametrize("case", list(BAD_VECTORS))
def test_bad_carried_vectors_are_one_line_exit_2_and_the_store_is_untouched(world, tmp_path, case):
    f = export_parquet(world["cache"], tmp_path / "real.parquet")
    bad = tmp_path / "bad.parquet"
    pq.write_table(_bad_vectors(pq.read_table(f), case), bad)
    before = snapshot(world["cache"])
    code, out, err = run_in_process("neighbors", "import", bad, "--name", "bad", "--backbone", world["model"],
                                    "--cache-dir", world["cache"], *TPL)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and BAD_VECTORS[case] in err and str(bad) in err, err
    assert "nothing was stored" in err
    assert snapshot(world["cache"]) == before


BAD = {
    "not JSON": (b'{"dog": ["bark"', "not JSON (Expecting"),
    "a JSON list": (b'["dog", "bark"]', "wrong shape: a JSON list, expected an object {class: [phrases]}"),
    "a string, not a list": (b'{"dog": "bark"}', "wrong shape: class 'dog' maps to a JSON str, expected a list"),
    "a number in a list": (b'{"dog": ["bark", 3]}', "wrong shape: class 'dog', item 2 is a JSON int"),
    "an empty list": (b'{"dog": ["bark"], "rain": []}', "class 'rain' has an empty list"),
    "no classes": (b"{}", "no classes"),
    "10,000 phrases": (json.dumps({"dog": [f"bark {i}" for i in range(10_000)]}).encode(),
                       "class 'dog' has 10000 phrases; at most 1000 per class (MAX_PHRASES_PER_CLASS)"),
    "not UTF-8": ('{"dog": ["b\u00e4rk"]}'.encode("latin-1"), "not UTF-8 text (byte 11: b'\\xe4')"),
    "a phrase of 100 kB": (json.dumps({"dog": ["x" * 100_000]}).encode(),
                           "class 'dog', phrase 1 is 100000 characters; at most 1000 (MAX_PHRASE_CHARS)"),
    "a class twice": (b'{"dog": ["bark"], "dog": ["woof"]}', "class 'dog' appears twice"),
    "a bad JSON line": (b'{"class": "dog", "phrase": "bark"}\n{"class": "dog"}\n',
                        "line 2: wrong shape, expected {\"class\": \"...\", \"phrase\": \"...\"}"),
    "blank class": (b'{" ": ["bark"]}', "class 1 is blank"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_file_is_one_line_exit_2_and_the_store_is_untouched(world, tmp_path, case):
    data, message = BAD[case]
    f = tmp_path / "bad.json"
    f.write_bytes(data)
    before = snapshot(world["cache"])
    code, out, err = run_in_process("neighbors", "import", f, "--name", "bad", "--backbone", world["model"],
                                    "--cache-dir", world["cache"], *TPL)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err and str(f) in err, err
    assert "nothing was stored" in err
    assert snapshot(world["cache"]) == before


def test_import_runs_stage_ones_cleaning_rules_and_reports_each(world, tmp_path):
    f = tmp_path / "messy.json"
    f.write_text(json.dumps({
        "dog bark": ["Barking dog", "1. Canine yelp!", "dog bark", "woof", "WOOF", "bark dog",
                     "a dog that barks at the mailman every single morning, loudly and at length",
                     "Sure, here are some:", "\u72ac\u306e\u9cf4\u304d\u58f0"],
        "rain": ["rainfall", "drizzle"]}))
    code, out, err = run_in_process("neighbors", "import", f, "--name", "messy", "--llm-label", "a hand", "--backbone",
                                    world["model"], "--cache-dir", world["cache"], *TPL, "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["dropped"] == {"class name": 1, "duplicate": 1, "class name reordered": 1, "too long": 1,
                            "prose": 1, "other script": 1}
    assert s["phrases_in_file"] == 11 and s["phrases_kept"] == 5 and s["num_neighbors"] == 3
    assert s["embedding_filter"].startswith("off: the encoder does not separate texts")
    store = store_of(world["cache"])
    assert store.get_phrases(["dog bark", "rain"], s["generation_key"]) == {
        "dog bark": ["barking dog", "canine yelp", "woof"], "rain": ["rainfall", "drizzle"]}
    status = {r["class_name"]: r for r in store.class_status(["dog bark", "rain"], s["generation_key"])}
    assert status["rain"]["short"] and not status["dog bark"]["short"] and status["rain"]["llm_id"] == "a hand"
    sampling = json.loads(store.phrase_rows(["rain"], s["generation_key"])[0]["sampling"])
    assert sampling["source"] == "imported" and sampling["label"] == "a hand" and sampling["file"] == "messy.json"
    assert sampling["rules"]["max_chars"] == 60 and sampling["rules"]["cleaning"] == "cleaning-v2"


def test_a_name_names_one_generation_unless_moved(world, tmp_path):
    f = tmp_path / "other.json"
    f.write_text(json.dumps({"rain": ["shower", "storm"]}))
    code, _, err = run_in_process("neighbors", "import", f, "--name", "real", "--backbone", world["model"],
                                  "--cache-dir", world["cache"], *TPL)
    assert code == 2 and f"--name real: already names generation {world['key']}" in err and "--force-name" in err
    assert store_of(world["cache"]).names()["real"] == world["key"]
    code, out, err = run_in_process("neighbors", "import", f, "--name", "moved", "--backbone", world["model"],
                                    "--cache-dir", world["cache"], *TPL, "--json")
    assert code == 0, err
    key = json.loads(out)["generation_key"]
    assert run_in_process("neighbors", "import", f, "--name", "moved", "--backbone", world["model"], "--cache-dir",
                          world["cache"], *TPL)[0] == 0  # the same file again: the same key, nothing new
    code, _, err = run_in_process("neighbors", "import", f, "--name", "auto", "--backbone", world["model"],
                                  "--cache-dir", world["cache"], *TPL)
    assert code == 2 and "a generation name is a letter" in err
    assert store_of(world["cache"]).names()["moved"] == key


def test_an_imported_list_trains_and_the_run_records_it(world, tmp_path):
    f = tmp_path / "cupl.json"
    f.write_text(json.dumps({c: [p.upper() for p in NEIGHBORS[c][:3]] for c in CLASSES[:3]}))
    assert run_in_process("neighbors", "import", f, "--name", "cupl", "--llm-label", "gpt-4o (CuPL)", "--backbone",
                          world["model"], "--cache-dir", world["cache"], *TPL)[0] == 0
    m = tune(world, tmp_path / "run", "--set", "sept.generation=cupl")
    st = m["fingerprints"]["store"]
    assert st["generation_name"] == "cupl" and st["generation_chosen_by"] == "name"
    assert st["generation_source"]["engine"] == "imported" and st["generation_source"]["llm_id"] == "gpt-4o (CuPL)"
    assert st["neighbors_per_class"] == {c: 3 for c in CLASSES[:3]}
    log = [json.loads(x) for x in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert log and all(r["intra"] >= 0 and r["inter"] >= 0 for r in log)


def test_auto_with_several_generations_asks_for_one(world, tmp_path, tiny_backbone):
    cache = tmp_path / "cache"
    store_of(cache).name_generation("real", fill_store(cache, tiny_backbone, TEMPLATES))
    f = tmp_path / "second.json"
    f.write_text(json.dumps({c: ["some sound"] for c in CLASSES[:3]}))
    assert run_in_process("neighbors", "import", f, "--name", "second", "--backbone", world["model"],
                          "--cache-dir", cache, *TPL)[0] == 0
    code, _, err = run_in_process("tune", "--dataset", world["spec"], "--data-root", world["data"], "--method", "coop",
                                  "--sept", "--protocol", "base2new", "--backbone", world["model"], "--cache-dir",
                                  cache, *FAST, "--out", tmp_path / "r")
    errors = [x for x in err.splitlines() if x.startswith("error:")]
    assert code == 2 and len(errors) == 1 and errors[0].endswith("=NAME")  # (the rest: model-loading progress)
    assert "sept.generation = 'auto': 2 generations" in err and world["key"] in err and "(name 'real')" in err
    assert "(name 'second'): llm unlabelled via imported" in err
    assert "choose one with --set sept.generation=KEY or =NAME" in err


def test_a_killed_import_leaves_the_store_as_it_was(world, tmp_path):
    """TEST DOUBLE: the process dies (os._exit, as a kill -9 would) at the manifest rename, after every Parquet and
    FAISS file of the import was written; a real kill cannot be timed into that window. The store is unchanged
    (verify: clean), the files are unlisted leftovers, and the next write removes them."""
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(world["cache"], cache)
    before = snapshot(cache)
    f = tmp_path / "late.json"
    f.write_text(json.dumps({"owl": ["hooting", "night bird call"], "rain": ["cloudburst"]}))
    code = ("import os, sys\n"
            "from cache.store.store import NeighborStore\n"
            "NeighborStore._commit = lambda self, old, new: os._exit(137)\n"
            "from pipeline.cli import main\n"
            "main(sys.argv[1:])\n")
    r = subprocess.run([sys.executable, "-c", code, "neighbors", "import", str(f), "--name", "late", "--backbone",
                        str(world["model"]), "--cache-dir", str(cache), *TPL], cwd=ROOT, env=cli_env(),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 137, r.stderr[-2000:]
    store = store_of(cache)
    after = snapshot(cache)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing committed was changed
    assert set(after) - set(before) and store.leftovers()  # the import's files exist, unlisted
    assert not store.verify() and "late" not in store.names()
    r = run_subprocess("neighbors", "import", f, "--name", "late", "--backbone", world["model"], "--cache-dir", cache,
                       *TPL, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "late" in store.names() and not store.leftovers() and not store.verify()


def test_encode_embeds_a_stored_generation_for_another_backbone(world, tmp_path):
    """A store made for one backbone, tuned with another: `neighbors encode` fills what tune would ask for."""
    import shutil

    from stages.backbones.config import BackboneConfig
    from stages.backbones.factory import load_backbone

    cache = tmp_path / "cache"
    shutil.copytree(world["cache"], cache)
    model = tmp_path / "tiny-clap-renamed"  # the same weights in another folder: another fingerprint
    shutil.copytree(world["model"], model)
    other_backbone = load_backbone(model, BackboneConfig(device="cpu"))
    code, out, err = run_in_process("neighbors", "encode", "--generation", "real", "--dataset", world["spec"],
                                    "--backbone", model, "--cache-dir", cache, *TPL, "--json")
    assert code == 0, err
    s = json.loads(out)
    texts = CLASSES + [p for c in CLASSES for p in NEIGHBORS[c]]
    assert s["generation_key"] == world["key"] and s["texts_encoded"] == len(texts)
    got = store_of(cache).get_embeddings(texts, TEMPLATES, other_backbone.fingerprint)
    np.testing.assert_allclose(got, frozen_template_embeddings(other_backbone, texts, TEMPLATES), rtol=0, atol=1e-6)
    assert json.loads(run_in_process("neighbors", "encode", "--generation", "real", "--backbone", model,
                                     "--cache-dir", cache, *TPL, "--json")[1])["texts_encoded"] == 0


def test_help_states_the_limits_of_the_code():
    from stages.neighbors import lists

    text = " ".join(run_in_process("neighbors", "import", "--help").stdout.split())
    for number, what in ((lists.MAX_PHRASES_PER_CLASS, "phrases a class"), (lists.MAX_PHRASE_CHARS, "characters a "
                         "phrase"), (lists.MAX_CLASS_CHARS, "a class name"), (lists.MAX_CLASSES, "classes")):
        assert f"{number:,} {what}" in text, (number, what)
    assert f"{lists.MAX_FILE_BYTES // 2**20} MiB" in text


def control(world, kind, name, *extra) -> dict:
    code, out, err = run_in_process("neighbors", "control", kind, "--like", "real", "--name", name, "--backbone",
                                    world["model"], "--cache-dir", world["cache"], *TPL, *extra, "--json")
    assert code == 0, err
    return json.loads(out)


def test_random_words_control_copies_the_real_counts_deterministically_and_trains(world, tmp_path):
    s = control(world, "random-words", "real-random", "--seed", 1)
    store = store_of(world["cache"])
    real = store.get_phrases(CLASSES, world["key"])
    made = store.get_phrases(CLASSES, s["generation_key"])
    assert {c: len(v) for c, v in made.items()} == {c: len(v) for c, v in real.items()}
    assert [[len(p.split()) for p in made[c]] for c in CLASSES] == [[len(p.split()) for p in real[c]] for c in CLASSES]
    assert s["parameters"]["seed"] == 1 and s["parameters"]["like"] == world["key"] and s["texts_encoded"] > 0
    row = next(r for r in store.generation_keys() if r["generation_key"] == s["generation_key"])
    assert row["engine"] == "control:random-words" and row["num_neighbors"] == 8  # the real generation's N
    again = control(world, "random-words", "real-random", "--seed", 1)
    assert again["generation_key"] == s["generation_key"] and again["classes_stored"] == 0  # same draw, same key
    other = control(world, "random-words", "real-random-2", "--seed", 2)
    assert store.get_phrases(CLASSES, other["generation_key"]) != made
    m = tune(world, tmp_path / "run", "--set", "sept.generation=real-random")
    assert m["fingerprints"]["store"]["generation_source"]["engine"] == "control:random-words"
    assert m["fingerprints"]["store"]["neighbors_per_class"] == {c: len(real[c]) for c in CLASSES[:3]}


def test_class_name_control_and_the_boundary_off_control_train(world, tmp_path):
    s = control(world, "class-name", "real-classname")
    made = store_of(world["cache"]).get_phrases(CLASSES, s["generation_key"])
    assert {c: len(v) for c, v in made.items()} == {c: len(NEIGHBORS[c]) for c in CLASSES}
    assert all(c in p for c in CLASSES for p in made[c]) and made["rain"][0] == "rain"
    m = tune(world, tmp_path / "classname", "--set", "sept.generation=real-classname")
    assert m["fingerprints"]["store"]["generation_name"] == "real-classname"
    # The third control is a setting on the real generation, by its name.
    m = tune(world, tmp_path / "no-boundary", "--set", "sept.generation=real",
             "--set", "sept.boundary_filter=false")
    assert m["neighbor_selection"]["boundary_filter"] == "off (sept.boundary_filter = false)"
    assert m["fingerprints"]["store"]["generation_key"] == world["key"] and m["sept"]["boundary_filter"] is False


def test_a_control_of_a_control_is_refused(world):
    control(world, "class-name", "cn-for-refusal")
    code, _, err = run_in_process("neighbors", "control", "random-words", "--like", "cn-for-refusal", "--name", "x",
                                  "--backbone", world["model"], "--cache-dir", world["cache"], *TPL)
    assert code == 2 and "is itself a control (control:class-name); give the real generation" in err
