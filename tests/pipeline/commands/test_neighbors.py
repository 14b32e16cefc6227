"""`neighbors ls|show|search|verify|repair|quality` and generate-neighbors' bad-input paths, without an LLM.

The store here is real (NeighborStore, Parquet, FAISS) and holds what a generate-neighbors run with the
default [neighbors] config would have written for three classes; only the phrases are hand-written
instead of sampled, and the embeddings come from the real tiny CLAP encoder. So generate-neighbors
on it is a warm rerun, and every bad-input case can be checked for "nothing else in the store is
touched" by hashing every file before and after.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from cli_kit import run_subprocess

ROOT = Path(__file__).resolve().parents[3]
PHRASES = {
    "dog": ["barking puppy", "canine howl", "woof", "growling hound", "yelping dog", "dog barking", "puppy yap",
            "snarling dog"],
    "rain": ["downpour", "raindrops falling", "drizzle", "rainfall", "heavy rain", "pouring rain", "rain shower",
             "light rain"],
    "church bells": ["bell tower chimes", "ringing church bell", "chiming bells", "cathedral bells", "bell peal",
                     "tolling bell", "carillon", "bells ringing"],
}
CLASSES = list(PHRASES)


@pytest.fixture(scope="module")
def clap(tmp_path_factory):
    from stages.backbones.factory import make_random_clap

    return make_random_clap("tiny", 0, tmp_path_factory.mktemp("cli-clap") / "tiny-clap")


def seed_store(cache: Path, clap: Path) -> dict:
    """Fill `cache` the way generate-neighbors would for CLASSES under the default config."""
    from cache.store import ClassNeighbors, NeighborStore, Provenance
    from pipeline.config_loader import load_config
    from stages.backbones.config import BackboneConfig
    from stages.backbones.fingerprint import backbone_fingerprint
    from stages.neighbors.encoding import TextEncoder
    from stages.neighbors.keys import resolve_generation

    cfg = load_config()
    ident = resolve_generation(cfg.neighbors, cache)
    prov = Provenance(ident.llm["id"], ident.llm["revision"], ident.llm["fingerprint"], "vllm", "seeded",
                      ident.prompt_hash, ident.template.version, 8)
    store = NeighborStore.in_cache(cache)
    # dog as a run with votes and verification would store it (its rows carry both scores)
    scores = {"dog": {"votes": [3, 3, 2, 2, 2, 1, 1, 1], "verify_scores": [0.95, 0.9, 0.8, 0.75, 0.7, 0.6, 0.55, 0.5]}}
    store.put_phrases([ClassNeighbors(c, p, prov, {"temperature": 0.0}, seed=0, **scores.get(c, {}))
                       for c, p in PHRASES.items()])
    texts = CLASSES + [p for ps in PHRASES.values() for p in ps]
    enc = TextEncoder(str(clap), BackboneConfig(device="cpu"), str(cache), 64)
    fp = backbone_fingerprint(clap, "clap", cache)
    store.put_embeddings(texts, cfg.text.templates, fp, enc.encode(texts, cfg.text.templates))
    return {"key": ident.key, "encoder": fp, "texts": texts}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, clap):
    cache = tmp_path_factory.mktemp("seeded") / "cache"
    info = seed_store(cache, clap)
    return {"cache": cache, **info}


def cli(cache: Path, *args, input=None, cwd=ROOT) -> subprocess.CompletedProcess:
    return run_subprocess(*args, "--cache-dir", cache, env={"SEPT_CACHE_DIR": str(cache)}, cwd=cwd, input=input,
                          timeout=300)


def snapshot(cache: Path) -> dict:
    """sha256 of every file of the store (lock files excluded: flock touches them)."""
    root = cache / "neighbors"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


def one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


# ------------------------------------------------------------------------------- inspection verbs


def test_ls_lists_the_key_and_index(seeded):
    p = cli(seeded["cache"], "neighbors", "ls", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    (key,) = out["generation_keys"]
    assert key["generation_key"] == seeded["key"] and key["classes"] == 3 and key["phrases"] == 24
    assert out["summary"]["encoders"][0]["texts"] == len(seeded["texts"])
    human = cli(seeded["cache"], "neighbors", "ls")
    assert seeded["key"] in human.stdout and "index" in human.stdout


def test_show_prints_ranked_phrases_with_provenance(seeded):
    p = cli(seeded["cache"], "neighbors", "show", "rain", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert [r["phrase"] for r in out["phrases"]] == PHRASES["rain"]
    assert [r["rank"] for r in out["phrases"]] == list(range(8))
    assert out["status"][0]["num_kept"] == 8 and not out["status"][0]["short"]
    human = cli(seeded["cache"], "neighbors", "show", "rain")
    assert "downpour" in human.stdout and seeded["key"] in human.stdout
    one_line_error(cli(seeded["cache"], "neighbors", "show", "thunder"), "'thunder'", "not in the store")
    assert "votes" not in human.stdout and "P(yes)" not in human.stdout  # rain has neither score


def test_show_prints_votes_and_verification_scores_when_stored(seeded):
    human = cli(seeded["cache"], "neighbors", "show", "dog")
    assert human.returncode == 0, human.stderr
    lines = [ln for ln in human.stdout.splitlines() if "barking puppy" in ln or "snarling dog" in ln]
    assert lines[0].endswith("(seed 0, votes 3, P(yes) 0.950)"), lines
    assert lines[1].endswith("(seed 0, votes 1, P(yes) 0.500)"), lines
    rows = json.loads(cli(seeded["cache"], "neighbors", "show", "dog", "--json").stdout)["phrases"]
    assert [r["votes"] for r in rows] == [3, 3, 2, 2, 2, 1, 1, 1]


def test_search_a_stored_text_finds_itself_first_without_a_model(seeded, clap):
    p = cli(seeded["cache"], "neighbors", "search", "downpour", "-k", "3", "--backbone", str(clap), "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["query_from"] == "store"
    assert out["hits"][0]["text"] == "downpour" and out["hits"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert out["hits"][0]["neighbor_of"] == ["rain"] and len(out["hits"]) == 3
    scores = [h["score"] for h in out["hits"]]
    assert scores == sorted(scores, reverse=True)


def test_search_without_backbone_uses_the_stores_only_encoder(seeded, clap):
    # HF_HUB_OFFLINE: the hub default (backbone.id) is not there, so only the store can name the encoder.
    p = cli(seeded["cache"], "neighbors", "search", "downpour", "-k", "3", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["encoder_fingerprint"] == seeded["encoder"] and out["query_from"] == "store"
    assert out["hits"][0]["text"] == "downpour"
    # A new text needs the weights: found under the fingerprint's name (the folder, from where it lies) ...
    near = cli(seeded["cache"], "neighbors", "search", "thunder rumble", "-k", "4", "--json", cwd=clap.parent)
    assert near.returncode == 0, near.stderr
    named = cli(seeded["cache"], "neighbors", "search", "thunder rumble", "-k", "4", "--backbone", str(clap), "--json")
    assert json.loads(near.stdout)["hits"] == json.loads(named.stdout)["hits"]
    # ... and elsewhere it is a one-line error that says what to pass.
    one_line_error(cli(seeded["cache"], "neighbors", "search", "thunder rumble"), "not in the store", "--backbone")


def test_search_without_backbone_names_the_encoders_when_there_are_several(store_copy, seeded):
    import numpy as np

    from cache.store import NeighborStore
    from pipeline.config_loader import load_config

    other = "clap:other-clap@0123456789abcdef"
    tpl = load_config().text.templates
    vectors = np.random.default_rng(0).standard_normal((2, len(tpl), 16)).astype(np.float32)
    NeighborStore.in_cache(store_copy).put_embeddings(["dog", "rain"], tpl, other, vectors)
    before = snapshot(store_copy)
    line = one_line_error(cli(store_copy, "neighbors", "search", "downpour"), "2 encoders", "--backbone")
    assert seeded["encoder"] in line and other in line
    assert snapshot(store_copy) == before


def test_search_new_text_encodes_it_and_matches_a_numpy_reference(seeded, clap):
    import numpy as np

    from cache.store import NeighborStore
    from pipeline.config_loader import load_config
    from stages.backbones.config import BackboneConfig
    from stages.neighbors.encoding import TextEncoder
    from stages.neighbors.filters import template_mean

    p = cli(seeded["cache"], "neighbors", "search", "thunder rumble", "-k", "5", "--backbone", str(clap), "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["query_from"] == "encoder"
    # Brute force over the stored vectors, in float64, must give the same top 5.
    tpl = load_config().text.templates
    store = NeighborStore.in_cache(seeded["cache"])
    stored = template_mean(store.get_embeddings(seeded["texts"], tpl, seeded["encoder"]))
    q = template_mean(TextEncoder(str(clap), BackboneConfig(device="cpu"), "", 64).encode(["thunder rumble"], tpl))[0]
    sims = stored @ q
    order = np.argsort(-sims)[:5]
    assert [h["text"] for h in out["hits"]] == [seeded["texts"][i] for i in order]
    np.testing.assert_allclose([h["score"] for h in out["hits"]], sims[order], atol=1e-5)


def test_quality_scores_the_stored_neighbors(seeded):
    p = cli(seeded["cache"], "neighbors", "quality", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["generation_key"] == seeded["key"] and out["overall"]["classes"] == 3
    assert out["overall"]["neighbors"] == 24
    assert out["overall"]["precision"] >= 0.9  # hand-written neighbors are clearly on topic
    assert [r["class"] for r in out["per_class"]] == CLASSES
    f = seeded["cache"].parent / "two.txt"
    f.write_text("rain\ndog\n")
    p2 = cli(seeded["cache"], "neighbors", "quality", "--classes-file", str(f), "--json")
    assert [r["class"] for r in json.loads(p2.stdout)["per_class"]] == ["rain", "dog"]
    one_line_error(cli(seeded["cache"], "neighbors", "quality", "--key", "0000000000000000"), "0000000000000000")
    # --per-class (the default) ends with the worst classes and their phrases, worst first
    human = cli(seeded["cache"], "neighbors", "quality", "--worst", "2")
    assert human.returncode == 0, human.stderr
    tail = human.stdout.split("worst 2 classes", 1)[1].splitlines()[1:3]
    by_prec = sorted(out["per_class"], key=lambda r: (r["precision"], r["own_similarity"]))
    assert [ln.split(" (")[0].strip() for ln in tail] == [r["class"] for r in by_prec[:2]]
    assert all(p in tail[0] for p in PHRASES[by_prec[0]["class"]][:3])


def test_warm_generate_on_seeded_store_is_a_no_op(seeded, clap):
    before = snapshot(seeded["cache"])
    f = seeded["cache"].parent / "warm.txt"
    f.write_text("\n".join(CLASSES) + "\n")
    p = cli(seeded["cache"], "generate-neighbors", "--classes-file", str(f), "--backbone", str(clap), "--json")
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert (s["llm_requests"], s["classes_reused"], s["phrases_encoded"]) == (0, 3, 0)
    assert s["phrases_reused"] == len(seeded["texts"]) and s["classes_short"] == []
    assert snapshot(seeded["cache"]) == before


# ------------------------------------------------------------------------------- bad input


@pytest.fixture
def store_copy(seeded, tmp_path):
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(seeded["cache"], cache)
    return cache


def test_generate_names_its_generation_and_a_taken_name_fails_before_the_llm(store_copy, seeded, clap, tmp_path):
    """--name on a warm rerun (every class stored already): the name is committed on its own, no engine starts.
    A name that already names another generation fails before anything else, unless --force-name moves it."""
    f = tmp_path / "warm.txt"
    f.write_text("\n".join(CLASSES) + "\n")
    gen = ["generate-neighbors", "--classes-file", str(f), "--backbone", str(clap), "--json"]
    p = cli(store_copy, *gen, "--name", "smollm2-v3")
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert (s["llm_requests"], s["generation_name"], s["generation_key"]) == (0, "smollm2-v3", seeded["key"])
    listing = json.loads(cli(store_copy, "neighbors", "ls", "--json").stdout)
    assert listing["names"] == {"smollm2-v3": seeded["key"]}
    assert listing["generation_keys"][0]["names"] == ["smollm2-v3"]
    assert "(smollm2-v3)" in cli(store_copy, "neighbors", "ls").stdout
    shown = json.loads(cli(store_copy, "neighbors", "show", "rain", "--key", "smollm2-v3", "--json").stdout)
    assert [r["phrase"] for r in shown["phrases"]] == PHRASES["rain"]  # --key takes a name too

    other = tmp_path / "other.json"
    other.write_text(json.dumps({"dog": ["a yapping terrier"]}))
    assert cli(store_copy, "neighbors", "import", str(other), "--name", "mine", "--backbone", str(clap)).returncode == 0
    before = snapshot(store_copy)
    one_line_error(cli(store_copy, *gen, "--name", "mine"), "--name mine: already names generation",
                   "pass --force-name to move it")
    assert snapshot(store_copy) == before
    one_line_error(cli(store_copy, *gen, "--force-name"), "--force-name: give the --name to move")
    assert cli(store_copy, *gen, "--name", "mine", "--force-name").returncode == 0
    assert json.loads(cli(store_copy, "neighbors", "ls", "--json").stdout)["names"]["mine"] == seeded["key"]


@pytest.mark.parametrize("content, fragment", [
    ("", "no class names"),
    ("\n\n", "no class names"),
    ("dog\n\nrain\n", "class 2 is blank"),
    ("dog\nrain\nDog \n", "'Dog' (line 3) repeats line 1"),
])
def test_bad_classes_files(store_copy, clap, content, fragment):
    before = snapshot(store_copy)
    f = store_copy.parent / "classes.txt"
    f.write_text(content)
    one_line_error(cli(store_copy, "generate-neighbors", "--classes-file", str(f), "--backbone", str(clap)), fragment)
    assert snapshot(store_copy) == before


def test_bad_arguments(store_copy, clap, tmp_path):
    before = snapshot(store_copy)
    f = tmp_path / "c.txt"
    f.write_text("dog\n")
    gen = ["generate-neighbors", "--backbone", str(clap)]
    one_line_error(cli(store_copy, *gen, "--dataset", "no-such-dataset"), "no-such-dataset", "unknown")
    one_line_error(cli(store_copy, *gen), "exactly one of --dataset")
    one_line_error(cli(store_copy, *gen, "--classes-file", str(tmp_path / "nope.txt")), "nope.txt", "not found")
    one_line_error(cli(store_copy, *gen, "--classes-file", str(f), "--llm", str(tmp_path / "no-model")),
                   "--llm", "no-model", "no such model folder")
    bad_prompt = tmp_path / "prompt.txt"
    bad_prompt.write_text("[user]\nList some sounds, please.\n")
    one_line_error(cli(store_copy, *gen, "--classes-file", str(f), "--prompt", str(bad_prompt)),
                   "prompt.txt", "{classname}")
    one_line_error(cli(store_copy, *gen, "--classes-file", str(f), "--set", "neighbors.temperature=-1"),
                   "neighbors.temperature")
    one_line_error(cli(store_copy, *gen[:1], "--classes-file", str(f), "--backbone", str(tmp_path / "no-clap")),
                   "no-clap")
    assert snapshot(store_copy) == before


def _parts(cache: Path, table: str) -> list[Path]:
    m = json.loads((cache / "neighbors" / "manifest.json").read_text())
    return [cache / "neighbors" / p["file"] for p in m["parts"] if p["table"] == table]


@pytest.mark.parametrize("table", ["phrases", "classes", "embeddings"])
def test_corrupted_parquet_is_a_clear_error_and_nothing_is_touched(store_copy, clap, table):
    part = _parts(store_copy, table)[0]
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip one byte in the middle of the file
    part.write_bytes(bytes(data))
    before = snapshot(store_copy)
    f = store_copy.parent / "c.txt"
    f.write_text("\n".join(CLASSES) + "\n")
    line = one_line_error(cli(store_copy, "generate-neighbors", "--classes-file", str(f), "--backbone", str(clap)))
    assert part.name in line
    assert snapshot(store_copy) == before
    v = cli(store_copy, "neighbors", "verify", "--json")
    assert v.returncode == 1 and any(part.name in x for x in json.loads(v.stdout)["problems"])


def test_corrupted_index_is_a_clear_error_then_repair(store_copy, clap):
    m = json.loads((store_copy / "neighbors" / "manifest.json").read_text())
    index = store_copy / "neighbors" / m["indexes"][0]["file"]
    index.write_bytes(index.read_bytes()[:-16] + b"\x00" * 16)
    before = snapshot(store_copy)
    f = store_copy.parent / "c.txt"
    f.write_text("\n".join(CLASSES) + "\n")
    gen = ["generate-neighbors", "--classes-file", str(f), "--backbone", str(clap)]
    one_line_error(cli(store_copy, *gen), index.name, "damaged")
    one_line_error(cli(store_copy, "neighbors", "search", "downpour", "--backbone", str(clap)), index.name)
    assert snapshot(store_copy) == before
    v = cli(store_copy, "neighbors", "verify")
    assert v.returncode == 1 and index.name in v.stdout
    r = cli(store_copy, "neighbors", "repair", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["ok"]
    p = cli(store_copy, *gen, "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["llm_requests"] == 0
