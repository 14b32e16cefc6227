"""Shared fixtures for the whole suite.

- `tiny_clap_dir`: a random tiny CLAP written once per session by `make_random_clap` (seed 0): the
  layout of a hub snapshot, 16 kHz / 2 s clips, D = 32, text width 64.
- `tiny_backbone`: that folder loaded through `load_backbone`, the path users take with hub ids, on CPU.
  Session-scoped and shared: read from it, never change it (no weight edits, no attribute changes).
- `llm_model_dir`: one `neighbors.model_dir` for every stage-one test of the session, so the packaged
  GGUF is converted to safetensors once (~20 s and 517 MB each time otherwise).
- `text_proxy_root`: a data root holding wordnet-sounds and gcide-sounds, built once per session from the
  Debian packages wordnet-base and dict-gcide by `datasets prepare`'s builders. Read it, never change it.

The session also gets its own cache folder (SEPT_CACHE_DIR) and the Hugging Face hub is put offline,
so no test writes to ~/.cache or waits on the network.
"""
from __future__ import annotations

import os

# Must be set before huggingface_hub is first imported: it reads the variable once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _session_cache_dir(tmp_path_factory):
    previous = os.environ.get("SEPT_CACHE_DIR")
    os.environ["SEPT_CACHE_DIR"] = str(tmp_path_factory.mktemp("sept-cache"))
    yield
    if previous is None:
        os.environ.pop("SEPT_CACHE_DIR", None)
    else:
        os.environ["SEPT_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def tiny_clap_dir(tmp_path_factory):
    from stages.backbones.factory import make_random_clap

    return make_random_clap("tiny", seed=0, out=tmp_path_factory.mktemp("models") / "tiny-clap")


@pytest.fixture(scope="session")
def tiny_backbone(tiny_clap_dir):
    from stages.backbones.config import BackboneConfig
    from stages.backbones.factory import load_backbone

    return load_backbone(tiny_clap_dir, BackboneConfig(device="cpu"))


@pytest.fixture(scope="session")
def llm_model_dir(tmp_path_factory):
    """Converted LLMs shared by every cache of the session (the GGUF conversion runs once)."""
    return tmp_path_factory.mktemp("llm-models")


@pytest.fixture(scope="session")
def text_proxy_root(tmp_path_factory):
    """<root>/wordnet-sounds and <root>/gcide-sounds, built once for the session."""
    from stages.data.gcide_sounds import build_gcide_sounds
    from stages.data.wordnet_sounds import build_wordnet_sounds

    root = tmp_path_factory.mktemp("text-proxy")
    assert build_wordnet_sounds(root)["reused"] is False and build_gcide_sounds(root)["reused"] is False
    return root
