"""Fixtures of the stage-two tests: the synthetic dataset and a store filled with the tiny backbone."""
from __future__ import annotations

import pytest

from tuning_kit import TEMPLATES, fill_store, write_dataset


@pytest.fixture(scope="session")
def synth_spec(tmp_path_factory):
    """(spec .toml path, data root) of the 6-class sine-tone dataset."""
    root = tmp_path_factory.mktemp("synth-data")
    return write_dataset(root), root


@pytest.fixture(scope="session")
def filled_cache(tmp_path_factory, tiny_backbone):
    """(cache dir, generation key) of a store holding every class's neighbors and embeddings (3 templates)."""
    cache = tmp_path_factory.mktemp("synth-cache")
    return cache, fill_store(cache, tiny_backbone, TEMPLATES)


@pytest.fixture(scope="session")
def other_backbone(tmp_path_factory, tiny_clap_dir):
    """The same weights under another folder name: a real backbone with a different fingerprint."""
    import shutil

    from stages.backbones.config import BackboneConfig
    from stages.backbones.factory import load_backbone

    copy = tmp_path_factory.mktemp("models") / "tiny-clap-renamed"
    shutil.copytree(tiny_clap_dir, copy)
    return load_backbone(copy, BackboneConfig(device="cpu"))
