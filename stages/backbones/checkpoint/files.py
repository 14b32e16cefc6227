"""Locating and fetching the single-file checkpoints of the checkpoint kinds (Pengi, MS-CLAP), without torch.

Stage one fingerprints the backbone on warm reruns before deciding whether anything needs encoding,
and the registry asks every kind's detector about each local path (CLAP folders included), so
nothing here imports torch until a .pth has actually been found.

Short ids name the published weights (each kind's record says where: stages/backbones/registry.py
`ShortId`): 'msclap:2022' / 'msclap:2023' are files of the hub repo microsoft/msclap, fetched with
huggingface_hub into the user's Hugging Face cache (so HF_HUB_OFFLINE and a file already in that cache work
as for any hub model); 'pengi:base' is base.pth of Zenodo record 8387083, fetched with the standard library
into <cache>/checkpoints/downloads/pengi-base/ (cache = $SEPT_CACHE_DIR, else the per-user cache: the folder
whose converted-checkpoints/ the loaders use), written atomically and reused once there. Offline
(HF_HUB_OFFLINE=1, the project's offline switch) or unreachable, a short id not already local is a one-line
UserError saying how to get the file by hand. A short id then stands for its local file everywhere, the
fingerprint included (the file's sha256).
"""
from __future__ import annotations

import os
from pathlib import Path

from cache.errors import UserError
from stages.backbones.registry import ShortId, published_file

CHECKPOINT_SUFFIXES = (".pth", ".pt")
DOWNLOADS_DIR = Path("checkpoints") / "downloads"  # under the cache root
DOWNLOAD_TIMEOUT_S = 60  # per socket operation (connect, each read), not for the whole file
CHUNK = 1 << 20


def is_short_id(spec) -> bool:
    return published_file(spec) is not None


def checkpoint_file(spec: str | os.PathLike, download: bool | None = None) -> Path:
    """The checkpoint a spec names: the file itself, the only *.pth in a folder, or a short id's file.

    download (short ids only): False = local copies only; True = fetch when missing; None = fetch unless
    HF_HUB_OFFLINE is set. A local path never touches the network.
    """
    if is_short_id(spec):
        return short_id_file(str(spec), download)
    return local_checkpoint_file(spec)


def local_checkpoint_file(spec: str | os.PathLike) -> Path:
    """The file itself, or the only *.pth in a folder: an absolute path that keeps the file's own name (a
    hub snapshot's CLAP_weights_2023.pth is a symlink to a blob named by its hash)."""
    path = Path(os.path.abspath(Path(spec).expanduser()))
    if path.is_file():
        return path
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix in CHECKPOINT_SUFFIXES and p.is_file())
        if len(found) == 1:
            return found[0]
        raise UserError(f"backbone folder {path}: expected exactly one *.pth checkpoint, found {len(found)}")
    raise UserError(f"backbone {str(spec)!r}: no such file or folder")


def has_single_checkpoint(path: Path) -> bool:
    """A local file or folder holding one checkpoint (the detectors' question; never a download)."""
    try:
        return local_checkpoint_file(path).suffix in CHECKPOINT_SUFFIXES
    except UserError:
        return False


def _first_line(error) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def _allowed(download: bool | None) -> bool:
    if download is not None:
        return download
    from stages.backbones.locate import downloads_allowed

    return downloads_allowed()


def short_id_file(spec: str, download: bool | None = None) -> Path:
    """The local file of a short id, fetched first when missing and allowed (see the module doc)."""
    entry = published_file(spec)
    if entry.hub_repo:
        return _hub_file(spec, entry, download)
    return _url_file(spec, entry, download)


def _hub_file(spec: str, entry: ShortId, download: bool | None) -> Path:
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    where = f"{entry.hub_repo}/{entry.filename}"
    try:
        # The cache first: a cached file is used without asking the hub whether it changed.
        return Path(hf_hub_download(entry.hub_repo, entry.filename, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    if not _allowed(download):
        raise UserError(f"backbone {spec!r}: {where} is not in the local Hugging Face cache "
                        f"({constants.HF_HUB_CACHE}) and downloads are off (HF_HUB_OFFLINE); {entry.manual()}")
    try:
        return Path(hf_hub_download(entry.hub_repo, entry.filename))  # the snapshot's name, not the blob's
    except Exception as e:  # noqa: BLE001 - any transport or hub failure means the same here
        raise UserError(f"backbone {spec!r}: cannot fetch {where} from the Hugging Face hub ({_first_line(e)}); "
                        f"{entry.manual()}") from None


def download_path(spec: str) -> Path:
    """Where a URL short id's file lives once downloaded."""
    from cache.fingerprint import cache_root

    entry = published_file(spec)
    return cache_root() / DOWNLOADS_DIR / entry.folder / entry.filename


def _url_file(spec: str, entry: ShortId, download: bool | None) -> Path:
    target = download_path(spec)
    if target.is_file():
        return target.resolve()
    if not _allowed(download):
        raise UserError(f"backbone {spec!r}: not downloaded yet ({target}) and downloads are off (HF_HUB_OFFLINE); "
                        f"{entry.manual()}")
    from cache.lock import file_lock

    with file_lock(target.with_name(f".{target.name}.lock")):
        if not target.is_file():  # another process may have finished it while we waited
            fetch_url(entry.url, target, spec, entry)
    return target.resolve()


def fetch_url(url: str, target: Path, spec: str, entry: ShortId) -> None:
    """Download `url` to `target` atomically (temp file beside it, then rename), with a progress bar.

    Any failure (no network, HTTP error, a body shorter than its Content-Length) is a UserError and
    leaves nothing at `target` nor a temp file beside it.
    """
    import http.client
    import urllib.error
    import urllib.request

    from tqdm.auto import tqdm

    from cache.atomic import atomic_path

    try:
        with atomic_path(target) as tmp:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                received = 0
                with open(tmp, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                                                  desc=f"{spec} ({entry.filename})", leave=False) as bar:
                    while True:
                        chunk = response.read(CHUNK)
                        if not chunk:
                            break
                        out.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                if total is not None and received != total:
                    raise OSError(f"received {received} of {total} bytes")
    # URLError and timeouts are OSErrors; a connection closed early is http.client.IncompleteRead.
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
        reason = e.reason if isinstance(e, urllib.error.URLError) and e.reason else e
        raise UserError(f"backbone {spec!r}: the download failed ({_first_line(reason)}); {entry.manual()}") from None
