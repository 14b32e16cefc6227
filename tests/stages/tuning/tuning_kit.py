"""Test material for stage two: a tiny labelled dataset of sine tones written with soundfile, and a
neighbor store filled directly through the store's API with the tiny backbone's own frozen text tower
(what stage one would write, without running an LLM)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf
import torch

# Sorted order matters for base2new: base = first ceil(6/2) = 3 classes, new = the other 3.
CLASSES = ["bird chirp", "car horn", "dog bark", "door knock", "rain", "siren"]
NEIGHBORS = {
    "bird chirp": ["songbird", "tweeting bird", "bird song", "chirping", "sparrow call"],
    "car horn": ["honking car", "vehicle horn", "beeping car", "traffic horn"],
    "dog bark": ["barking dog", "canine yelp", "woof", "puppy bark", "growling dog", "howling dog"],
    "door knock": ["knocking", "rapping on wood", "tapping door"],
    "rain": ["rainfall", "drizzle", "downpour", "raindrops"],
    "siren": ["ambulance siren", "police siren", "alarm wail", "emergency siren"],
}
GENERATION_KEY = "test-generation-key"
TEMPLATES = ["a sound of a {}.", "the sound of {}.", "{} can be heard."]  # T = 3 keeps the store small


def write_dataset(root: Path, name: str = "synth", classes: Sequence[str] = CLASSES, train_per_class: int = 4,
                  test_per_class: int = 2, sample_rate: int = 16_000, seconds: float = 0.5,
                  skip_train: Sequence[str] = ()) -> Path:
    """Write <root>/<name>/ in PALM's layout plus <root>/<name>.toml; return the spec path.

    Class i is a sine at 200 * (i + 1) Hz plus seeded noise, so clips differ within a class too.
    """
    folder = root / name
    (folder / "audios").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    rows = {"train": [], "test": []}
    for i, c in enumerate(classes):
        for split, count in (("train", 0 if c in skip_train else train_per_class), ("test", test_per_class)):
            for k in range(count):
                wave = 0.5 * np.sin(2 * np.pi * 200 * (i + 1) * t) + 0.05 * rng.standard_normal(t.size)
                fname = f"{c.replace(' ', '_')}_{split}{k}.wav"
                sf.write(folder / "audios" / fname, wave.astype(np.float32), sample_rate)
                rows[split].append(f"{fname},{c}")
    for split, lines in rows.items():
        (folder / f"{split}.csv").write_text("path,classname\n" + "\n".join(lines) + "\n")
    spec = root / f"{name}.toml"
    quoted = ", ".join(f'"{c}"' for c in classes)
    spec.write_text(f'name = "{name}"\ndisplay_name = "{name}"\nlayout = "palm"\nclasses = [{quoted}]\n')
    return spec


@torch.no_grad()
def frozen_template_embeddings(backbone, texts: Sequence[str], templates: Sequence[str]) -> np.ndarray:
    """float32 [n, T, D], unit per template: e_t(x) of docs/method.md, as stage one stores them."""
    flat = [t.format(x) for x in texts for t in templates]
    e = torch.nn.functional.normalize(backbone.encode_text(flat).float(), dim=-1)
    return e.view(len(texts), len(templates), -1).cpu().numpy()


def fill_store(cache_dir: Path, backbone, templates: Sequence[str], neighbors: dict = NEIGHBORS,
               classes: Sequence[str] | None = None, generation_key: str = GENERATION_KEY) -> str:
    """Write phrases (under a test provenance) and their frozen embeddings; return the generation key."""
    from cache.store import ClassNeighbors, NeighborStore, Provenance

    classes = list(classes if classes is not None else neighbors)
    # The generation key is a hash of provenance; tests pass the key to `tune` via sept.generation.
    prov = Provenance(llm_id="test-llm", llm_revision="0", llm_fingerprint=generation_key, engine="none",
                      engine_version="0", prompt_hash="test", prompt_version="1", num_neighbors=8)
    store = NeighborStore.in_cache(cache_dir)
    store.put_phrases([ClassNeighbors(c, neighbors[c], prov, {"temperature": 0.0}, 0) for c in classes])
    texts = list(dict.fromkeys(classes + [p for c in classes for p in neighbors[c]]))
    store.put_embeddings(texts, list(templates), backbone.fingerprint,
                         frozen_template_embeddings(backbone, texts, templates))
    return prov.generation_key


def fit_on_random_features(model, run_dir: Path, train_cfg) -> None:
    """Train `model` on its training classes (3) with 4 random "audio" features each, no SEPT, quietly."""
    from stages.tuning.config import SeptConfig
    from stages.tuning.trainer import TrainData, train

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(4)
    data = TrainData(labels=labels, features=torch.randn(12, model.backbone.embed_dim, generator=g))
    train(model, data, train_cfg, SeptConfig(), None, seed=1, run_dir=run_dir, identity={},
          backbone_fingerprint=model.backbone.fingerprint, progress=False)


def random_audio(backbone, n: int = 6, seed: int = 5) -> torch.Tensor:
    """n random "audio" embeddings of the backbone's width, the same for every call."""
    return torch.randn(n, backbone.embed_dim, generator=torch.Generator().manual_seed(seed))
