"""Checkpoints of a prompt-tuning run: prompt parameters only (safetensors) plus the trainer's state.

    <run>/checkpoints/epoch-0003/prompt.safetensors   the learner's trainable parameters, nothing else
    <run>/checkpoints/epoch-0003/trainer_state.pt     optimizer, scaler, epoch, lr, RNG states, identity
    <run>/checkpoints/latest.json                     which epoch folder is the newest complete one
    <run>/prompt.safetensors                          the final context, for transfer to other classes
    <run>/tower_buffers.safetensors                   train.tower_mode = "train" only: the towers' BatchNorm
                                                      statistics after training (the test features use them)

Each epoch folder is built under a temp name and renamed into place, then latest.json is replaced
atomically, then older folders are removed: a kill at any moment leaves a complete latest checkpoint.
The backbone fingerprint travels in the safetensors metadata; loading onto another backbone is refused.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from cache.atomic import atomic_dir, atomic_write_json, atomic_write_with
from cache.errors import UserError

PROMPT_FILE = "prompt.safetensors"
STATE_FILE = "trainer_state.pt"
LATEST = "latest.json"
FORMAT = "sept-prompt-v1"


def save_prompt(path: Path, state: dict[str, torch.Tensor], method: str, backbone_fingerprint: str) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    meta = {"format": FORMAT, "method": method, "backbone_fingerprint": backbone_fingerprint}
    atomic_write_with(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta), suffix=".safetensors")


TOWER_BUFFERS = "tower_buffers.safetensors"


def save_tower_buffers(path: Path, buffers: dict[str, torch.Tensor], backbone_fingerprint: str) -> None:
    """The towers' BatchNorm statistics of a train-mode run (backbone.tower_buffers()), atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in buffers.items()}
    meta = {"format": FORMAT + "-tower-buffers", "backbone_fingerprint": backbone_fingerprint}
    atomic_write_with(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta), suffix=".safetensors")


def load_prompt(path: Path, backbone_fingerprint: str, method: str | None = None) -> dict[str, torch.Tensor]:
    """Prompt tensors from `path`; a UserError when it belongs to another backbone or method."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise UserError(f"prompt checkpoint {path}: not found")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as e:  # noqa: BLE001 - a damaged or foreign file: say which and why, in one line
        raise UserError(f"prompt checkpoint {path}: not a readable safetensors file ({type(e).__name__}: {e})") from None
    if meta.get("format") != FORMAT:
        raise UserError(f"prompt checkpoint {path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    saved = meta.get("backbone_fingerprint")
    if saved != backbone_fingerprint:
        raise UserError(f"prompt checkpoint {path}: trained on backbone {saved}, but this run uses {backbone_fingerprint}; "
                        f"a context only fits the backbone it was trained on")
    if method is not None and meta.get("method") != method:
        raise UserError(f"prompt checkpoint {path}: holds a {meta.get('method')} prompt, this run's method is {method}")
    return tensors


@dataclass
class Checkpoint:
    epoch: int                     # epochs completed
    prompt: dict[str, torch.Tensor]
    state: dict


def save_checkpoint(root: Path, epoch: int, prompt: dict[str, torch.Tensor], state: dict, method: str,
                    backbone_fingerprint: str) -> Path:
    root = Path(root)
    name = f"epoch-{epoch:04d}"
    target = root / name
    if target.exists():  # a rerun of this epoch after a kill between publish and latest.json: replace it
        shutil.rmtree(target)
    with atomic_dir(target) as tmp:
        save_prompt(tmp / PROMPT_FILE, prompt, method, backbone_fingerprint)
        atomic_write_with(tmp / STATE_FILE, lambda p: torch.save(state, p), suffix=".pt")
    atomic_write_json(root / LATEST, {"epoch": epoch, "dir": name})
    for old in root.glob("epoch-*"):
        if old.name != name and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return target


def latest_checkpoint_dir(root: Path) -> Path | None:
    pointer = Path(root) / LATEST
    if not pointer.is_file():
        return None
    try:
        name = json.loads(pointer.read_text())["dir"]
    except (ValueError, KeyError, TypeError):
        raise UserError(f"checkpoint pointer {pointer}: damaged; delete {Path(root)} and rerun without --resume") from None
    path = Path(root) / name
    return path if path.is_dir() else None


def load_checkpoint(root: Path, backbone_fingerprint: str, method: str) -> Checkpoint | None:
    """The newest complete checkpoint under `root`, or None when there is none."""
    path = latest_checkpoint_dir(root)
    if path is None:
        return None
    prompt = load_prompt(path / PROMPT_FILE, backbone_fingerprint, method)
    try:
        state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise UserError(f"checkpoint {path / STATE_FILE}: unreadable ({type(e).__name__}); rerun with --force "
                        f"to start the run over") from None
    return Checkpoint(epoch=int(state["epoch"]), prompt=prompt, state=state)
