"""The semantic-structure diagnostic and `inspect`, on the tiny random CLAP and a store filled through its API.

The learned prompts here are real CoOp prompts saved the way `tune` saves them (safetensors via
stages.tuning.checkpoint.save_prompt), with contexts chosen so the right answer is known independently:
a context equal to the token embeddings of "a sound of a" must give the frozen model's embedding of the
sentence "a sound of a {x}." for every class name and neighbor. Each run's diagnostic arrays are written by
the function `tune` calls while its learner is in memory (stages/tuning/diagnostic_arrays.py); the report
reads only those arrays and the records.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cli_kit import run_in_process, run_subprocess
from pipeline.report.diagnostic import own_other, pick_pairs, similarity
from record_kit import make_record

TEMPLATES = ["a sound of a {}.", "the sound of {}.", "{} can be heard."]
# Neighbors for the demo dataset's classes (configs/datasets/demo.toml); two classes get none, to check
# that they are left out and named.
NEIGHBORS = {
    "airplane": ["jet plane", "aircraft engine", "plane flying overhead"],
    "ambient pad": ["soft synth pad", "drone"],
    "animal": ["cow mooing", "sheep bleating", "farm animal"],
    "bass drum": ["kick drum", "low drum hit"],
    "cymbal": ["crash cymbal", "hi-hat", "ride cymbal"],
    "engine starting": ["car ignition", "motor starting"],
    "snare drum": ["snare hit", "rimshot"],
    "tabla": ["indian hand drum", "tabla beat"],
}
GENERATION_KEY_LLM = "diagnostic-test-llm"


def test_own_other_hand_case():
    # 2 classes, neighbors owned by [0, 0, 1].
    sim = np.array([[0.9, 0.7, 0.1],
                    [0.2, 0.4, 0.8]])
    owner = np.array([0, 0, 1])
    n = own_other(sim, owner)
    assert n["own"] == pytest.approx((0.9 + 0.7 + 0.8) / 3)
    assert n["other"] == pytest.approx((0.1 + 0.2 + 0.4) / 3)
    assert n["gap"] == pytest.approx(n["own"] - n["other"])
    only_second = own_other(sim, owner, rows=np.array([1]))  # class 1 and its own neighbors only
    assert only_second["own"] == pytest.approx(0.8) and np.isnan(only_second["other"])


def test_similarity_is_cosine():
    z = np.array([[3.0, 0.0], [1.0, 1.0]])
    p = np.array([[0.0, 2.0], [5.0, 0.0]])
    np.testing.assert_allclose(similarity(z, p), [[0.0, 1.0], [2 ** -0.5, 2 ** -0.5]])


@torch.no_grad()
def _frozen(backbone, texts, templates):
    flat = [t.format(x) for x in texts for t in templates]
    e = F.normalize(backbone.encode_text(flat).float(), dim=-1)
    return e.view(len(texts), len(templates), -1).cpu().numpy()


@pytest.fixture(scope="module")
def diag_setup(tmp_path_factory, tiny_backbone, tiny_clap_dir):
    """A store with the demo classes' neighbors, and two CoOp runs (without / with SEPT) with known contexts."""
    from cache.store import ClassNeighbors, NeighborStore, Provenance
    from pipeline.config_loader import load_config
    from pipeline.runs import RunDir
    from stages.data.specs import dataset_classnames
    from stages.data.splits import base_new_split
    from stages.tuning.checkpoint import save_prompt
    from stages.tuning.diagnostic_arrays import DIAGNOSTIC_FILE, diagnostic_arrays, write_arrays
    from stages.tuning.learners import build_learner
    from stages.tuning.prompt_tokens import PromptLayout

    root = tmp_path_factory.mktemp("diag")
    cache = root / "cache"
    prov = Provenance(llm_id="test", llm_revision="0", llm_fingerprint=GENERATION_KEY_LLM, engine="none",
                      engine_version="0", prompt_hash="test", prompt_version="1", num_neighbors=8)
    store = NeighborStore.in_cache(cache)
    store.put_phrases([ClassNeighbors(c, p, prov, {"temperature": 0.0}, 0) for c, p in NEIGHBORS.items()])
    texts = list(dict.fromkeys(list(NEIGHBORS) + [p for ps in NEIGHBORS.values() for p in ps]))
    store.put_embeddings(texts, TEMPLATES, tiny_backbone.fingerprint, _frozen(tiny_backbone, texts, TEMPLATES))

    init = "a sound of a"
    layout = PromptLayout.build(tiny_backbone, 4, init)
    ids = torch.tensor([layout.slot_ids], dtype=torch.long)
    ctx_text = tiny_backbone.token_embeddings(ids)[0].float().cpu()
    ctx_random = torch.randn(layout.n_ctx, tiny_backbone.text_width, generator=torch.Generator().manual_seed(3)) * 0.02
    runs = root / "runs"
    for name, sept, ctx in (("coop-nosept", False, ctx_random), ("coop-sept", True, ctx_text)):
        cfg = load_config(None, [f"backbone.id={json.dumps(str(tiny_clap_dir))}", "backbone.device=\"cpu\"",
                                 f"method.n_ctx={layout.n_ctx}", f"text.templates={json.dumps(TEMPLATES)}",
                                 f"sept.generation=\"{prov.generation_key}\"", f"sept.enabled={str(sept).lower()}"])
        run = RunDir(runs / name)
        run.write_config(cfg)
        save_prompt(run.path / "prompt.safetensors", {"ctx": ctx}, "coop", tiny_backbone.fingerprint)
        learner = build_learner(tiny_backbone, cfg.method, TEMPLATES, 1)
        learner.load_prompt_state({"ctx": ctx})
        base, new = base_new_split(dataset_classnames("demo"))
        arrays = diagnostic_arrays(learner, store, prov.generation_key, base + new, TEMPLATES,
                                   tiny_backbone.fingerprint, base_count=len(base))
        write_arrays(run.path / DIAGNOSTIC_FILE, arrays)
        run.write_record(make_record(dataset="demo", method="coop", sept=sept, seed=1, shots=4, base=50.0, new=40.0,
                                     # what tune records: the generation the SEPT run read
                                     fingerprints={"backbone": tiny_backbone.fingerprint,
                                                   "store": {"generation_key": prov.generation_key} if sept else {}},
                                     diagnostic={"file": DIAGNOSTIC_FILE}))
    return {"runs": runs, "cache": cache, "ctx_text": ctx_text, "init": init}


def test_pairs_are_found_by_dataset_method_and_seed(diag_setup):
    pairs = pick_pairs(diag_setup["runs"])
    assert len(pairs) == 1
    assert pairs[0].without.name == "coop-nosept" and pairs[0].with_sept.name == "coop-sept"


def test_diagnostic_matrices_equal_independent_computations(diag_setup, tiny_backbone, tiny_clap_dir):
    from pipeline.report.diagnostic import diagnose

    pair = pick_pairs(diag_setup["runs"])[0]
    d = diagnose(pair)  # from the arrays the runs wrote: no model, no store
    # Classes without neighbors are left out and named; base classes (first 5 sorted) come first.
    assert d.omitted == ["electronic blip", "synth bass"]
    assert d.classes == ["airplane", "ambient pad", "animal", "bass drum", "cymbal", "engine starting",
                         "snare drum", "tabla"]
    assert d.split_after == 5
    phrases = [p for c in d.classes for p in NEIGHBORS[c]]
    assert d.neighbors == phrases

    # template: mean over templates of the unit frozen embeddings, renormalised, computed here from the tower.
    def template_mean(texts):
        e = torch.from_numpy(_frozen(tiny_backbone, texts, TEMPLATES)).double().mean(1)
        return F.normalize(e, dim=-1).numpy()

    expected = template_mean(d.classes) @ template_mean(phrases).T
    np.testing.assert_allclose(d.matrices["template"], expected, atol=1e-6)

    # SEPT run: context = token embeddings of "a sound of a" -> the frozen sentence "a sound of a {x}.".
    with torch.no_grad():
        zc = F.normalize(tiny_backbone.encode_text([f"{diag_setup['init']} {c}." for c in d.classes]).double(), dim=-1)
        zp = F.normalize(tiny_backbone.encode_text([f"{diag_setup['init']} {p}." for p in phrases]).double(), dim=-1)
    np.testing.assert_allclose(d.matrices["SEPT"], (zc @ zp.T).numpy(), atol=1e-5)
    # The random context is something else entirely.
    assert np.abs(d.matrices["no SEPT"] - d.matrices["SEPT"]).max() > 1e-3

    for condition, sim in d.matrices.items():
        assert d.numbers[condition]["all"] == pytest.approx(own_other(sim, d.owner))
        assert d.numbers[condition]["new"] == pytest.approx(own_other(sim, d.owner, np.arange(5, 8)))


def test_report_with_diagnostic_writes_pictures_numbers_and_section(diag_setup, tmp_path):
    out = tmp_path / "rep"
    proc = run_subprocess("report", diag_setup["runs"], "--out", out, "--diagnostic")
    assert proc.returncode == 0, proc.stderr
    md = (out / "report.md").read_text()
    assert "## Semantic structure (diagnostic)" in md
    assert "![semantic structure demo-base2new-coop-4shot-seed1](semantic_structure-demo-base2new-coop-4shot-seed1.png)" in md
    assert "left out: electronic blip, synth bass" in md
    numbers = json.loads((out / "diagnostic.json").read_text())
    assert len(numbers) == 1 and numbers[0]["base_classes"] == 5 and numbers[0]["num_neighbors"] == 19
    sept_all = numbers[0]["numbers"]["SEPT"]["all"]
    assert f"| demo | CoOp | 1 | SEPT | {sept_all['own']:.4f} | {sept_all['other']:.4f} |" in md
    png = out / "semantic_structure-demo-base2new-coop-4shot-seed1.png"
    from matplotlib.image import imread

    pixels = imread(png)
    assert pixels.shape[1] > pixels.shape[0] > 100  # three panels side by side
    assert ET.parse(png.with_suffix(".svg")).getroot().tag.endswith("svg")


def test_the_diagnostic_needs_no_prompt_checkpoint_and_names_a_pair_without_arrays(diag_setup, tmp_path):
    """An old run whose learner's checkpoint layout no longer loads still reports: only the arrays are read."""
    import shutil

    from pipeline.report.diagnostic import diagnostic_sections, diagnose

    runs = tmp_path / "runs"
    shutil.copytree(diag_setup["runs"], runs)
    for run in runs.iterdir():
        (run / "prompt.safetensors").unlink()
        (run / "config.toml").write_text("[method]\nname = 'a learner this version does not know'\n")
    before = diagnose(pick_pairs(diag_setup["runs"])[0]).numbers
    assert diagnose(pick_pairs(runs)[0]).numbers == before
    (runs / "coop-nosept" / "diagnostic.npz").unlink()
    sections, files = diagnostic_sections(runs, tmp_path / "rep", progress=False)
    assert files == [] and "No pair of runs with and without SEPT has the diagnostic's arrays" in sections[1]
    assert f"{runs / 'coop-nosept'}: no diagnostic.npz" in sections[1]


def test_inspect_finds_the_words_a_context_was_made_of(diag_setup):
    # In this process (the models are loaded already); the CLI's exit codes are checked in the next tests.
    result = run_in_process("inspect", diag_setup["runs"] / "coop-sept", "-k", "3", "--json")
    assert result.code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["method"] == "coop" and info["prompt_from"] == "final" and info["ctx_shape"][0] == 4
    # Each context vector IS a token embedding: its nearest token is that token, at distance 0.
    nearest = [row[0] for row in info["context"]]
    assert "".join(t["token"] for t in nearest).strip() == diag_setup["init"]
    assert all(t["distance"] == pytest.approx(0.0, abs=1e-5) for t in nearest)
    assert all(row[1]["distance"] > 0 for row in info["context"])  # ... and the runner-up is not
    assert info["fingerprints"]["backbone"].startswith("clap:")
    assert info["config"]["method"]["n_ctx"] == 4
    text = run_in_process("inspect", diag_setup["runs"] / "coop-sept")
    assert text.code == 0 and "nearest vocabulary tokens by Euclidean distance" in text.stdout


def test_nearest_tokens_against_brute_force():
    from pipeline.report.inspect import nearest_tokens

    g = torch.Generator().manual_seed(0)
    vocab = torch.randn(50, 8, generator=g)
    ctx = torch.randn(3, 8, generator=g)
    ids, dist = nearest_tokens(ctx, vocab, k=4, exclude=[7])
    for i in range(3):
        brute = sorted(((float(np.linalg.norm(ctx[i].double().numpy() - vocab[j].double().numpy())), j)
                        for j in range(50) if j != 7))[:4]
        assert ids[i].tolist() == [j for _, j in brute]
        np.testing.assert_allclose(dist[i].numpy(), [d for d, _ in brute], rtol=1e-12)


def test_inspect_bad_input_is_one_line(tmp_path):
    for run, expect in ((tmp_path / "nope", "not a folder"), (tmp_path, "no config.json")):
        proc = run_subprocess("inspect", run)
        assert proc.returncode == 2 and expect in proc.stderr and proc.stderr.count("\n") == 1
