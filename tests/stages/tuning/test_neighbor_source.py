"""From the store to the bank: margins are the template-averaged frozen distances; gaps are one-line errors."""
from __future__ import annotations

import numpy as np
import pytest

from cache.errors import UserError
from pipeline.config_loader import load_config
from stages.tuning.config import MethodConfig
from stages.tuning.learners import build_learner
from stages.tuning.neighbor_source import load_neighbor_bank

from tuning_kit import CLASSES, NEIGHBORS, TEMPLATES, fill_store


def sept_cfg(gkey, per_step=4):
    cfg = load_config(None, [f"sept.generation={gkey!r}", f"sept.neighbors_per_step={per_step}"])
    return cfg.replace("text", templates=TEMPLATES)


def learner_for(backbone, classes):
    learner = build_learner(backbone, MethodConfig(name="coop", n_ctx=4), TEMPLATES, 0)
    learner.set_classnames(classes)
    return learner


def test_margins_equal_template_averaged_frozen_distances(tiny_backbone, filled_cache):
    cache, gkey = filled_cache
    classes = CLASSES[:3]
    bank, info = load_neighbor_bank(sept_cfg(gkey), learner_for(tiny_backbone, classes), tiny_backbone, classes,
                                    cache, dataset="synth")
    # Independent reference: run the frozen tower now on every filled template, float64 distances.
    def e(text):
        v = tiny_backbone.encode_text([t.format(text) for t in TEMPLATES]).double().numpy()
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    for i, ci in enumerate(classes):
        for j, cj in enumerate(classes):
            for n, phrase in enumerate(NEIGHBORS[cj]):
                ref = np.mean(np.linalg.norm(e(ci) - e(phrase), axis=1))
                assert bank.margins[i, j, n].item() == pytest.approx(ref, abs=2e-6)
    assert bank.counts.tolist() == [len(NEIGHBORS[c]) for c in classes]
    assert np.isnan(bank.margins[:, 1, 5].numpy()).all()  # 'car horn' has 4 neighbors: padding is NaN
    # Phrases are tokenized once into prompts with the same context slots as class names.
    learner = learner_for(tiny_backbone, classes)
    ids, mask = learner.tokenize_phrases(["woof"])
    row = bank.ids[2, NEIGHBORS["dog bark"].index("woof")]
    assert row[: ids.shape[1]].tolist() == ids[0].tolist() and int(bank.mask[2, 2].sum()) == int(mask.sum())
    assert info["generation_key"] == gkey and info["encoder_fingerprint"] == tiny_backbone.fingerprint
    assert info["neighbors_per_class"] == {c: len(NEIGHBORS[c]) for c in classes}


def test_a_class_missing_from_the_store_stops_with_the_fill_command(tiny_backbone, filled_cache):
    cache, gkey = filled_cache
    classes = CLASSES[:2] + ["vacuum cleaner"]
    with pytest.raises(UserError) as err:
        load_neighbor_bank(sept_cfg(gkey), learner_for(tiny_backbone, classes), tiny_backbone, classes, cache,
                           dataset="synth")
    msg = str(err.value)
    assert "1 of 3 training classes have no neighbors" in msg and "'vacuum cleaner'" in msg
    assert f"sept-pipeline generate-neighbors --dataset synth --backbone {tiny_backbone.id} --cache-dir {cache}" in msg
    assert "\n" not in msg


def test_embeddings_of_another_backbone_do_not_count(tiny_backbone, other_backbone, tmp_path):
    """A store filled by another backbone (same texts) lacks this backbone's embeddings: a one-line error."""
    assert other_backbone.fingerprint != tiny_backbone.fingerprint
    gkey = fill_store(tmp_path, other_backbone, TEMPLATES, classes=CLASSES[:3])
    with pytest.raises(UserError, match=rf"texts of 3 classes .* have no frozen embedding for backbone clap:.*"
                                        rf"under all 3 templates; fill the gap with `sept-pipeline neighbors encode "
                                        rf"--generation {gkey} --dataset synth --backbone "):
        load_neighbor_bank(sept_cfg(gkey), learner_for(tiny_backbone, CLASSES[:3]), tiny_backbone, CLASSES[:3],
                           tmp_path, dataset="synth")


def test_a_class_the_llm_left_without_a_phrase_trains_on_the_others(tiny_backbone, tmp_path):
    """Stage one stores a class with no kept phrase when the LLM gave nothing usable; the boundary view and the
    bank take it as an empty row (it was a reshape error before), and say which class it is."""
    classes = CLASSES[:3]
    neighbors = {**{c: NEIGHBORS[c] for c in classes}, classes[1]: []}
    gkey = fill_store(tmp_path, tiny_backbone, TEMPLATES, neighbors=neighbors, classes=classes)
    bank, info = load_neighbor_bank(sept_cfg(gkey), learner_for(tiny_backbone, classes), tiny_backbone, classes,
                                    tmp_path, dataset="synth")
    assert bank.counts[1].item() == 0 and bank.counts[0].item() > 0 and bank.counts[2].item() > 0
    assert info["classes_without_neighbors"] == [classes[1]]
    assert info["neighbors_per_class"][classes[1]] == 0


def test_auto_finds_the_one_generation_and_the_record_says_how(tiny_backbone, filled_cache):
    """sept.generation defaults to auto: the store answers which generation, no [neighbors] config is read."""
    cache, gkey = filled_cache
    classes = CLASSES[:3]
    cfg = load_config(None, ["neighbors.llm='/no/such/llm'"]).replace("text", templates=TEMPLATES)
    assert cfg.sept.generation == "auto"
    bank, info = load_neighbor_bank(cfg, learner_for(tiny_backbone, classes), tiny_backbone, classes, cache,
                                    dataset="synth")
    assert info["generation_key"] == gkey and info["generation_chosen_by"] == "auto"
    assert info["generation"] == "auto" and info["generation_name"] == ""
    assert info["generation_source"]["llm_id"] == "test-llm" and info["generation_source"]["engine"] == "none"


def test_a_phrase_too_long_for_the_tower_is_left_out_counted_and_named(tiny_backbone, tmp_path, capfd):
    """The prompt of a long stored phrase exceeds the text tower with this many context vectors: that phrase is
    left out of the bank, counted in the record and named in one warning line; a class name that does not fit
    still refuses the run."""
    from stages.tuning.prompt_tokens import token_rows

    classes = CLASSES[:3]
    long = "a " + " ".join(["very"] * 40) + " long dog bark"
    neighbors = {c: list(NEIGHBORS[c]) for c in classes}
    neighbors["dog bark"].append(long)
    gkey = fill_store(tmp_path, tiny_backbone, TEMPLATES, neighbors=neighbors, classes=classes)
    max_len = int(tiny_backbone.max_text_len)
    texts = classes + [p for c in classes for p in NEIGHBORS[c]]
    longest = max(len(r) for r in token_rows(tiny_backbone, [f"X {t}." for t in texts]))
    n_ctx = max_len - longest  # the class names and the usual phrases just fit; the long phrase cannot
    assert len(token_rows(tiny_backbone, [f"X {long}."])[0]) + n_ctx - 1 > max_len
    learner = build_learner(tiny_backbone, MethodConfig(name="coop", n_ctx=n_ctx), TEMPLATES, 0)
    learner.set_classnames(classes)
    capfd.readouterr()
    bank, info = load_neighbor_bank(sept_cfg(gkey), learner, tiny_backbone, classes, tmp_path, dataset="synth")
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: 1 stored neighbor phrases do not fit the text tower with "
                                               f"{n_ctx} context tokens and are left out of this run: {long!r} (dog bark)")
    assert bank.counts.tolist() == [len(NEIGHBORS[c]) for c in classes]  # every other phrase is in the bank
    sel = info["selection"]
    assert sel["phrases_too_long"] == 1 and sel["too_long"] == {"bird chirp": 0, "car horn": 0, "dog bark": 1}
    assert sel["too_long_phrases"] == {"dog bark": [long]}
    assert info["neighbors_per_class"]["dog bark"] == len(NEIGHBORS["dog bark"]) + 1  # what the store holds
    assert info["num_phrases"] == sum(len(NEIGHBORS[c]) for c in classes)
    class_len = max(len(r) for r in token_rows(tiny_backbone, [f"X {c}." for c in classes]))
    with pytest.raises(UserError, match=r"method.n_ctx: .* plus the class name .* do not fit"):
        build_learner(tiny_backbone, MethodConfig(name="coop", n_ctx=max_len - class_len + 2), TEMPLATES,
                      0).set_classnames(classes)
