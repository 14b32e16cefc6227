"""Backbone fingerprints: stable, weight-sensitive, memoised, and free of torch."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cache.errors import UserError
from cache.fingerprint import sha256_file
from stages.backbones.fingerprint import MEMO_NAME, backbone_fingerprint

REPO = Path(__file__).resolve().parents[3]


def _expected(folder):
    """Independent computation of the documented recipe for a folder with one safetensors file."""
    import hashlib

    line = f"model.safetensors\t{sha256_file(folder / 'model.safetensors')}\n"
    return f"clap:{folder.name}@{hashlib.sha256(line.encode()).hexdigest()[:16]}"


def test_format_value_and_stability(tiny_clap_dir, tiny_backbone, tmp_path):
    fp = backbone_fingerprint(tiny_clap_dir, cache_dir=tmp_path / "c1")
    assert re.fullmatch(r"clap:tiny-clap@[0-9a-f]{16}", fp)
    assert fp == _expected(tiny_clap_dir)
    assert backbone_fingerprint(tiny_clap_dir, cache_dir=tmp_path / "c1") == fp  # memo hit
    assert backbone_fingerprint(str(tiny_clap_dir), cache_dir=tmp_path / "c2") == fp  # fresh memo
    assert tiny_backbone.fingerprint == fp  # the adapter uses the same function


def test_changes_when_weights_change_even_at_the_same_size(tiny_clap_dir, tmp_path):
    folder = tmp_path / "tiny-clap"
    shutil.copytree(tiny_clap_dir, folder)
    cache = tmp_path / "cache"
    before = backbone_fingerprint(folder, cache_dir=cache)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # flip one byte of the last tensor: same size, new mtime
    weights.write_bytes(bytes(data))
    after = backbone_fingerprint(folder, cache_dir=cache)
    assert after != before and after == _expected(folder)


def test_memo_is_a_json_keyed_by_real_path_size_and_mtime(tiny_clap_dir, tmp_path):
    cache = tmp_path / "cache"
    backbone_fingerprint(tiny_clap_dir, cache_dir=cache)
    memo = json.loads((cache / "fingerprints" / MEMO_NAME).read_text())
    real = os.path.realpath(tiny_clap_dir / "model.safetensors")
    st = os.stat(real)
    assert memo[real] == {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                          "sha256": sha256_file(real)}
    # A memo entry is trusted while size and mtime match: planting a wrong hash shows it is read.
    memo[real]["sha256"] = "0" * 64
    (cache / "fingerprints" / MEMO_NAME).write_text(json.dumps(memo))
    assert backbone_fingerprint(tiny_clap_dir, cache_dir=cache) != _expected(tiny_clap_dir)
    (cache / "fingerprints" / MEMO_NAME).write_text("{not json")  # a damaged memo is only a cache
    assert backbone_fingerprint(tiny_clap_dir, cache_dir=cache) == _expected(tiny_clap_dir)


def test_a_legacy_bin_beside_safetensors_does_not_change_it(tiny_clap_dir, tmp_path):
    folder = tmp_path / "tiny-clap"
    shutil.copytree(tiny_clap_dir, folder)
    before = backbone_fingerprint(folder, cache_dir=tmp_path / "c")
    (folder / "pytorch_model.bin").write_bytes(b"other copy of the weights")
    assert backbone_fingerprint(folder, cache_dir=tmp_path / "c") == before


def test_folder_without_weights_is_a_user_error(tiny_clap_dir, tmp_path):
    folder = tmp_path / "noweights"
    shutil.copytree(tiny_clap_dir, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    with pytest.raises(UserError, match=r"no \*\.safetensors or \*\.bin weight files"):
        backbone_fingerprint(folder, cache_dir=tmp_path / "c")


def test_hub_id_not_in_the_cache_is_a_user_error_without_network(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    with pytest.raises(UserError, match="sept-test/absent.*needs the hub"):
        backbone_fingerprint("sept-test/absent")


def test_fingerprint_never_imports_torch_or_transformers(tiny_clap_dir, tmp_path):
    code = (
        "import sys\n"
        "from stages.backbones.fingerprint import backbone_fingerprint\n"
        f"fp = backbone_fingerprint({str(tiny_clap_dir)!r})\n"
        "heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
        "print(fp, ','.join(heavy) or '-')\n"
    )
    env = {**os.environ, "SEPT_CACHE_DIR": str(tmp_path / "c"), "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    fp, heavy = out.stdout.split()
    assert fp == _expected(tiny_clap_dir)
    assert heavy == "-", f"fingerprint imported {heavy}"
