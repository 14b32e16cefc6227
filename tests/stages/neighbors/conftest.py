"""Fixtures of the stage-one tests: a tiny random CLAP (built once per session)."""
import pytest


@pytest.fixture(scope="session")
def neighbors_tiny_clap(tmp_path_factory):
    from stages.backbones.factory import make_random_clap

    return make_random_clap("tiny", 0, tmp_path_factory.mktemp("neighbors-clap") / "tiny-clap")
