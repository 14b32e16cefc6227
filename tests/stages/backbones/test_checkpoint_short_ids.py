"""Short ids of the checkpoint kinds ('msclap:2023', 'pengi:base') resolve to their downloaded files.

No test reaches the internet. The msclap ids go through the real huggingface_hub against a Hugging Face
cache built here in the hub's own layout (blobs/, snapshots/<rev>/ links, refs/main), holding a tiny random
CLAP_weights_2023.pth and, as 'gpt2', the tiny checkpoint's own GPT-2-style tokenizer (msclap's short ids
take their tokenizer from the hub id msclap itself uses). huggingface_hub reads HF_HUB_CACHE and
HF_HUB_OFFLINE once, at import (tests/conftest.py sets HF_HUB_OFFLINE=1 before that), so the tests point
its `constants` at the temp cache instead of the environment variables. Pengi's download uses urllib:
a local http.server stands in for Zenodo where a real transfer is needed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import os
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from cache.errors import UserError
from cli_kit import run_in_process
from stages.backbones.checkpoint import files as checkpoint_files
from stages.backbones.checkpoint.files import checkpoint_file, download_path
from stages.backbones.config import BackboneConfig
from stages.backbones.factory import load_backbone
from stages.backbones.fingerprint import backbone_fingerprint
from stages.backbones.checkpoint.random_model import make_random_checkpoint
from stages.backbones.registry import KINDS, published_file, resolve_kind

TEXTS = ["a dog barks", "rain on a roof"]


def _put_in_hub_cache(hub: Path, repo_id: str, files: dict[str, Path]) -> Path:
    """Lay files out as huggingface_hub does: blobs/<sha256>, snapshots/<rev>/<name> -> blob, refs/main."""
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    rev = hashlib.sha1(repo_id.encode()).hexdigest()  # any 40-hex commit id
    snapshot = repo / "snapshots" / rev
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for name, src in files.items():
        blob = repo / "blobs" / hashlib.sha256(src.read_bytes()).hexdigest()
        shutil.copyfile(src, blob)
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).symlink_to(os.path.relpath(blob, (snapshot / name).parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(rev)
    return snapshot


def _tokenizer_repo(checkpoint_dir: Path, model_type: str) -> dict[str, Path]:
    """The files of a tokenizer's hub repo: the checkpoint's tokenizer/ plus the config.json that every hub
    model repo has (AutoTokenizer reads its model_type)."""
    files = {p.name: p for p in (checkpoint_dir / "tokenizer").iterdir()}
    config = checkpoint_dir.parent / f"{checkpoint_dir.name}-{model_type}-config.json"
    config.write_text(json.dumps({"model_type": model_type}))
    return {**files, "config.json": config}


@pytest.fixture(scope="module")
def msclap_2023_dir(tmp_path_factory):
    return make_random_checkpoint("msclap-2023", "tiny", 0, tmp_path_factory.mktemp("m") / "tiny-2023")


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache, offline; returns its folder."""
    from huggingface_hub import constants

    hub = tmp_path / "hf" / "hub"
    hub.mkdir(parents=True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("SEPT_CACHE_DIR", str(tmp_path / "sept-cache"))  # an empty project cache as well
    return hub


# ---- msclap: the Hugging Face cache ------------------------------------------------------------------
def test_msclap_2023_resolves_to_the_cached_hub_file_and_loads_offline(msclap_2023_dir, offline_hub):
    snapshot = _put_in_hub_cache(offline_hub, "microsoft/msclap",
                                 {"CLAP_weights_2023.pth": msclap_2023_dir / "CLAP_weights_2023.pth"})
    _put_in_hub_cache(offline_hub, "gpt2", _tokenizer_repo(msclap_2023_dir, "gpt2"))

    file = checkpoint_file("msclap:2023")
    assert file == snapshot / "CLAP_weights_2023.pth" and file.is_file()
    assert resolve_kind("msclap:2023") == "msclap-2023" == resolve_kind(str(file))
    by_path = backbone_fingerprint(str(msclap_2023_dir / "CLAP_weights_2023.pth"))
    assert backbone_fingerprint("msclap:2023") == by_path == backbone_fingerprint(str(file))
    assert by_path.startswith("msclap-2023:CLAP_weights_2023@")

    backbone = load_backbone("msclap:2023", BackboneConfig(device="cpu"))
    reference = load_backbone(msclap_2023_dir, BackboneConfig(device="cpu"))
    assert backbone.id == "msclap:2023" and backbone.fingerprint == by_path
    assert reference.fingerprint.split("@")[1] == by_path.split("@")[1]  # the folder names it tiny-2023
    assert torch.equal(backbone.encode_text(TEXTS), reference.encode_text(TEXTS))


def test_msclap_short_id_offline_and_not_cached_exits_2_with_one_line(offline_hub):
    code, _, err = run_in_process("backbones", "info", "msclap:2023", "--set", "backbone.device=cpu")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "'msclap:2023'" in err and "microsoft/msclap" in err and "CLAP_weights_2023.pth" in err
    assert "hf download microsoft/msclap CLAP_weights_2023.pth" in err and "pass its path" in err


def test_msclap_checkpoint_cached_but_its_tokenizer_not_is_one_line(msclap_2023_dir, offline_hub):
    _put_in_hub_cache(offline_hub, "microsoft/msclap",
                      {"CLAP_weights_2023.pth": msclap_2023_dir / "CLAP_weights_2023.pth"})
    code, _, err = run_in_process("backbones", "info", "msclap:2023", "--set", "backbone.device=cpu")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "'msclap:2023'" in err and "'gpt2'" in err


# ---- pengi:base: the project cache's downloads folder -----------------------------------------------
@pytest.fixture(scope="module")
def pengi_dir(tmp_path_factory):
    return make_random_checkpoint("pengi", "tiny", 0, tmp_path_factory.mktemp("m") / "tiny-pengi")


def _no_network(*args, **kwargs):
    raise AssertionError("the network was touched")


def test_pengi_base_offline_and_not_downloaded_exits_2_with_one_line(offline_hub, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)  # offline: not even tried
    code, _, err = run_in_process("backbones", "info", "pengi:base", "--set", "backbone.device=cpu")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "'pengi:base'" in err and "https://zenodo.org/records/8387083/files/base.pth" in err
    assert "pass the file's path" in err and "HF_HUB_OFFLINE" in err


def test_pengi_base_already_downloaded_is_reused_without_the_network(pengi_dir, offline_hub, monkeypatch):
    from huggingface_hub import constants

    target = download_path("pengi:base")
    assert target.parent.parent == Path(os.environ["SEPT_CACHE_DIR"]) / "checkpoints" / "downloads"
    target.parent.mkdir(parents=True)
    shutil.copyfile(pengi_dir / "pengi.pth", target)
    _put_in_hub_cache(offline_hub, "openai/clip-vit-base-patch16", _tokenizer_repo(pengi_dir, "clip"))
    # Downloads allowed, but urlopen raises: this only proves that nothing reaches for the network.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)

    assert checkpoint_file("pengi:base") == target.resolve()
    copy = pengi_dir.parent / "elsewhere" / "base.pth"
    copy.parent.mkdir()
    shutil.copyfile(target, copy)
    fingerprint = backbone_fingerprint("pengi:base")
    assert fingerprint == backbone_fingerprint(str(copy)) and fingerprint.startswith("pengi:base@")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # the tokenizer: from the hub cache only
    backbone = load_backbone("pengi:base", BackboneConfig(device="cpu"))
    assert backbone.id == "pengi:base" and backbone.fingerprint == fingerprint
    assert backbone.encode_text(TEXTS).shape == (2, backbone.embed_dim)


def _files_left(folder: Path) -> list[str]:
    """What a download left beside its target, less the (empty) lock file."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) if folder.exists() else []


def test_pengi_base_failed_download_leaves_no_partial_file(offline_hub, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    # A test double: no reachable host here can be made to fail the name lookup on demand.
    def unreachable(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    with pytest.raises(UserError) as info:
        checkpoint_file("pengi:base")
    message = str(info.value)
    assert "'pengi:base'" in message and "Name or service not known" in message and "\n" not in message
    assert published_file("pengi:base").url in message
    assert _files_left(download_path("pengi:base").parent) == []


class _Server(http.server.BaseHTTPRequestHandler):
    body = b""
    declared = 0  # Content-Length sent; more than len(body) = the connection drops mid-file

    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", str(self.declared))
        self.end_headers()
        self.wfile.write(self.body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def local_server(offline_hub, monkeypatch):
    """A real HTTP server on localhost standing in for Zenodo (urllib runs for real against it)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    server = http.server.HTTPServer(("127.0.0.1", 0), _Server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/records/8387083/files/base.pth"
    moved = dataclasses.replace(published_file("pengi:base"), url=url)  # the pengi record, pointing here
    monkeypatch.setitem(KINDS, "pengi", dataclasses.replace(KINDS["pengi"], published=(moved,)))
    yield _Server
    server.shutdown()
    server.server_close()


def test_pengi_base_is_downloaded_once_atomically(local_server, monkeypatch):
    local_server.body = os.urandom(3 * checkpoint_files.CHUNK + 17)
    local_server.declared = len(local_server.body)
    file = checkpoint_file("pengi:base")
    assert file == download_path("pengi:base").resolve() and file.read_bytes() == local_server.body
    assert _files_left(file.parent) == ["base.pth"]
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)  # the second time: the file on disk
    assert checkpoint_file("pengi:base") == file


def test_pengi_base_connection_dropped_mid_file_leaves_no_partial_file(local_server):
    local_server.body = os.urandom(2 * checkpoint_files.CHUNK)
    local_server.declared = len(local_server.body) + 1000
    with pytest.raises(UserError) as info:
        checkpoint_file("pengi:base")
    assert "'pengi:base'" in str(info.value) and "\n" not in str(info.value)
    assert _files_left(download_path("pengi:base").parent) == []
