"""The training loop of every prompt learner, with or without the SEPT loss. One readable function.

Per step: a batch of frozen audio embeddings (cached, or encoded with a random crop), one draw of
neighbors when L_se is on, a forward through the learnable prompt, L = L_method + lambda * L_se,
SGD on the prompt parameters only. Per epoch: the lr of the schedule, one row to the run log (train_log.jsonl,
plus TensorBoard / W&B when `train.log_to` asks: stages/tuning/run_log.py), a checkpoint.

Precision: with `train.amp` the towers run under autocast, but every loss (the logits and their
cross-entropy, KgCoOp's term, L_se's distances) is computed in float32 with autocast switched off. In bf16
a distance near 0.6 is off by ~3e-3, enough to move hinges across their margins, and training would no
longer optimise what float32 evaluation measures.

Randomness comes from three generators seeded from the run's seed: shuffling, audio crops, and neighbor
draws. They are separate so that switching L_se off (or lambda = 0, where the neighbor path is skipped
entirely) leaves the shuffles and crops, hence the whole run, bit-identical to the baseline. All three
are saved in each checkpoint, so a resumed run continues exactly where the interrupted one stopped.

Tower mode (`train.tower_mode`): "eval" (the default) keeps the frozen towers in eval mode. "train" is PALM's
training: the towers run in train mode during every epoch (dropout, drop-path, SpecAugment, BatchNorm on
batch statistics, its running statistics moving), back in eval mode after training. Their random draws come
from torch's global generators, seeded from the run's seed at the start; each checkpoint saves those
generators and the towers' BatchNorm statistics, so a resumed train-mode run is bit-identical too.
"train_bn_eval" is the same with BatchNorm kept in eval mode (jhyukjang/SubT's run_epoch).

Selection (`train.select`): "last" evaluates the prompt as the last epoch left it; "lowest_train_loss" keeps
the prompt (and, with train-mode towers, their BatchNorm statistics) of the epoch whose mean training loss
(the row's `loss`: the whole objective, SEPT's term included) was lowest, the first of equals, as SubT's
run_training evaluates at each new lowest; the state travels in every checkpoint, so resuming keeps it.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from cache.errors import UserError
from stages.tuning.checkpoint import TOWER_BUFFERS, load_checkpoint, save_checkpoint, save_prompt, save_tower_buffers
from stages.tuning.neighbor_bank import NeighborBank, NeighborDraw, scatter_draws
from stages.tuning.run_log import RunLog, read_rows
from stages.tuning.schedule import group_lr, lr_at
from stages.tuning.sept_loss import semantic_expansion_loss

CHECKPOINTS = "checkpoints"


@dataclass
class TrainData:
    """Training clips as labels plus either cached features or an encoder called per batch."""

    labels: torch.Tensor                                        # [N] class index in the learner's class list
    features: torch.Tensor | None = None                        # [N, D] frozen audio embeddings (cached crops)
    encode: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None  # (clip idx, crop gen) -> [B, D]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, idx: torch.Tensor, crop_gen: torch.Generator) -> torch.Tensor:
        return self.features[idx] if self.features is not None else self.encode(idx, crop_gen)


def derived_seed(seed: int, stream: int) -> int:
    """Seed of independent stream `stream` of a run's seed (0 shuffle, 1 crops, 2 neighbors, 3 train-mode towers'
    global generators, 4 evaluation crops)."""
    return int(seed) * 1_000_003 + 7919 * stream + 1


def derived_generator(seed: int, stream: int) -> torch.Generator:
    """Independent generator `stream` of a run's seed (see `derived_seed`)."""
    return torch.Generator().manual_seed(derived_seed(seed, stream))


def global_rng_state() -> dict:
    """torch's global generators (CPU and every CUDA device): what dropout and drop-path draw from."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def amp_settings(device: torch.device, amp: str) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, use a GradScaler) for this device and `train.amp`.

    CUDA: auto = bf16 where supported, else fp16 with a GradScaler. CPU: only an explicit bf16 turns
    autocast on (auto stays off: on most CPUs bf16 is slower than float32); fp16 is for CUDA only.
    """
    if amp == "off":
        return None, False
    if device.type == "cuda":
        if amp == "auto":
            return (torch.bfloat16, False) if torch.cuda.is_bf16_supported() else (torch.float16, True)
        return (torch.bfloat16, False) if amp == "bf16" else (torch.float16, True)
    if device.type == "cpu" and amp == "bf16":
        return torch.bfloat16, False
    return None, False


def sept_active(sept_cfg) -> bool:
    """L_se runs only when enabled with lambda > 0; lambda = 0 skips the neighbor path (exact baseline)."""
    return bool(sept_cfg.enabled) and float(sept_cfg.lam) > 0.0


def hardest_count(sept_cfg) -> int:
    v = sept_cfg.inter_negatives
    return 0 if v == "all" else int(v.split(":", 1)[1])


def training_step(learner, audio: torch.Tensor, labels: torch.Tensor, draw: NeighborDraw | None, sept_cfg,
                  optimizer, scaler, amp_dtype: torch.dtype | None) -> tuple[float, dict]:
    """One optimisation step: L = L_method (+ lambda * L_se when `draw` is given); returns (loss, parts).

    The towers run under autocast of `amp_dtype` on the batch's device (none when None); the losses are
    computed in float32 with autocast off, even inside a caller's own autocast. Only prompt parameters
    are in `optimizer`.
    """
    device_type = audio.device.type
    autocast = torch.autocast(device_type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
    with autocast:
        out = learner.forward_train(audio, draw.ids if draw else None, draw.mask if draw else None,
                                    cocoop_bias=sept_cfg.cocoop_bias)
    with torch.autocast(device_type, enabled=False):
        out = out.float()
        loss, parts = learner.method_loss(out, labels)
        if draw is not None:
            se = semantic_expansion_loss(out.z, scatter_draws(out.p, draw.valid), draw.valid, draw.margins.float(),
                                         sept_cfg.alpha, sept_cfg.beta, hardest_count(sept_cfg))
            loss = loss + sept_cfg.lam * se.total
            parts.update(se=se.total.detach(), intra=se.intra.detach(), inter=se.inter.detach())
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return float(loss.detach()), {k: float(v) for k, v in parts.items()}


def make_optimizer(learner, train_cfg) -> torch.optim.Optimizer:
    """SGD with momentum over the learner's trainable (prompt) parameters only, in the learner's lr groups."""
    groups = [dict(g, lr=train_cfg.lr * g.get("lr_mult", 1.0)) for g in learner.param_groups()]
    return torch.optim.SGD(groups, lr=train_cfg.lr, momentum=train_cfg.momentum, weight_decay=train_cfg.weight_decay)


def train(
    learner,
    data: TrainData,
    train_cfg,
    sept_cfg,
    bank: NeighborBank | None,
    *,
    seed: int,
    run_dir: Path,
    identity: dict,
    backbone_fingerprint: str,
    resume: bool = False,
    progress: bool = True,
    run_log: RunLog | None = None,
) -> dict:
    """Train `learner` in place; write checkpoints and the log under `run_dir`; return a summary dict.

    `identity` is what must match for --resume to continue a checkpoint (resolved config, classes, data).
    `run_log` receives one row per epoch (default: train_log.jsonl in `run_dir` only).
    """
    run_dir = Path(run_dir)
    device = next(learner.parameters()).device
    use_sept = sept_active(sept_cfg)
    if use_sept and bank is None:
        raise ValueError("SEPT is on but no neighbor bank was given")
    optimizer = make_optimizer(learner, train_cfg)
    amp_dtype, use_scaler = amp_settings(device, train_cfg.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    gens = {"shuffle": derived_generator(seed, 0), "crop": derived_generator(seed, 1),
            "neighbors": derived_generator(seed, 2)}

    n = len(data)
    steps_per_epoch = math.ceil(n / train_cfg.batch_size)
    run_log = run_log or RunLog(run_dir)
    start_epoch, kept_rows = 0, []
    tower_mode = getattr(train_cfg, "tower_mode", "eval")
    towers_train, batchnorm_train = tower_mode != "eval", tower_mode == "train"
    lowest = getattr(train_cfg, "select", "last") == "lowest_train_loss"
    best: dict | None = None  # select lowest_train_loss: {"epoch", "loss", "prompt", "buffers"} of the best epoch
    backbone = learner.backbone
    if towers_train:
        torch.manual_seed(derived_seed(seed, 3))  # dropout, drop-path, SpecAugment: seeded by the run
    if resume:
        ckpt = load_checkpoint(run_dir / CHECKPOINTS, backbone_fingerprint, learner.name)
        if ckpt is None:
            raise UserError(f"--resume: no checkpoint under {run_dir / CHECKPOINTS}; run without --resume to start")
        _check_identity(ckpt.state["identity"], identity, run_dir)
        learner.load_prompt_state(ckpt.prompt)
        optimizer.load_state_dict(ckpt.state["optimizer"])
        scaler.load_state_dict(ckpt.state["scaler"])
        for name, g in gens.items():
            g.set_state(ckpt.state["rng"][name])
        if towers_train:  # the towers' BatchNorm statistics and the global generators at the checkpoint
            backbone.load_tower_buffers(ckpt.state["towers"]["buffers"])
            set_global_rng_state(ckpt.state["towers"]["rng"])
        best = ckpt.state.get("best")
        start_epoch = ckpt.epoch
        kept_rows = [r for r in read_rows(run_dir) if r["epoch"] < start_epoch]
    run_log.start(kept_rows)  # every sink now holds exactly the checkpointed epochs

    bar = tqdm(total=train_cfg.epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch,
               desc=f"train {learner.name}{'+sept' if use_sept else ''}", disable=not progress, leave=False)
    started = time.time()
    try:
        for epoch in range(start_epoch, train_cfg.epochs):
            lr = lr_at(epoch, train_cfg.lr, train_cfg.epochs, train_cfg.schedule, train_cfg.warmup_epochs,
                       train_cfg.warmup_lr)
            for group in optimizer.param_groups:  # a learner's group may run at a multiple (DePT's head) ...
                group["lr"] = group_lr(lr, group.get("lr_mult", 1.0), epoch, train_cfg.warmup_epochs)
            learner.train()
            backbone.set_towers_training(towers_train, batchnorm=batchnorm_train)
            sums: dict[str, float] = {}
            epoch_start = time.time()
            order = torch.randperm(n, generator=gens["shuffle"])
            for step in range(steps_per_epoch):
                idx = order[step * train_cfg.batch_size : (step + 1) * train_cfg.batch_size]
                audio = data.batch(idx, gens["crop"]).to(device, non_blocking=True)
                labels = data.labels[idx].to(device, non_blocking=True)
                draw = bank.sample(gens["neighbors"]).to(device) if use_sept else None
                value, parts = training_step(learner, audio, labels, draw, sept_cfg, optimizer, scaler, amp_dtype)
                if not math.isfinite(value):
                    raise FloatingPointError(f"loss became {value} at epoch {epoch + 1}, step {step + 1}; "
                                             f"lower train.lr or use train.amp=bf16/off")
                for k, v in {"loss": value, **parts}.items():
                    sums[k] = sums.get(k, 0.0) + v
                bar.set_postfix(epoch=f"{epoch + 1}/{train_cfg.epochs}", loss=f"{value:.4f}")
                bar.update(1)

            run_log.epoch({"epoch": epoch, "lr": lr, "steps": steps_per_epoch,
                           "seconds": round(time.time() - epoch_start, 4),
                           **{k: v / steps_per_epoch for k, v in sums.items()}})
            mean_loss = sums["loss"] / steps_per_epoch
            if lowest and (best is None or mean_loss < best["loss"]):  # strictly lower: the first of equals
                best = {"epoch": epoch, "loss": mean_loss, "prompt": {k: v.detach().cpu().clone()
                                                                      for k, v in learner.prompt_state().items()},
                        "buffers": backbone.tower_buffers() if towers_train else {}}
            state = {
                "epoch": epoch + 1,
                "lr": lr,
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": {name: g.get_state() for name, g in gens.items()},
                "identity": identity,
            }
            if towers_train:
                state["towers"] = {"buffers": backbone.tower_buffers(), "rng": global_rng_state()}
            if best is not None:
                state["best"] = best
            save_checkpoint(run_dir / CHECKPOINTS, epoch + 1, learner.prompt_state(), state, learner.name,
                            backbone_fingerprint)
    finally:  # evaluation, and whatever runs next in this process, sees eval-mode towers
        backbone.set_towers_training(False)
    bar.close()
    selected = {}
    if lowest and best is not None:  # evaluate (and keep) the state of the epoch with the lowest training loss
        learner.load_prompt_state(best["prompt"])
        if towers_train:
            backbone.load_tower_buffers(best["buffers"])
        selected = {"selected_epoch": int(best["epoch"]), "selected_loss": float(best["loss"])}
    save_prompt(run_dir / "prompt.safetensors", learner.prompt_state(), learner.name, backbone_fingerprint)
    if towers_train:  # the test features depend on them: kept beside the prompt, as PALM saves bn0's
        save_tower_buffers(run_dir / TOWER_BUFFERS, backbone.tower_buffers(), backbone_fingerprint)
    learner.eval()
    last = run_log.rows[-1] if run_log.rows else {}
    return {"epochs": train_cfg.epochs, "resumed_from_epoch": start_epoch, "steps_per_epoch": steps_per_epoch,
            "final_loss": last.get("loss"), "train_seconds": round(time.time() - started, 3),
            "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "off", "sept_active": use_sept,
            "logit_scale": learner.logit_scale(), "tower_mode": tower_mode,
            "select": "lowest_train_loss" if lowest else "last",
            **(selected or {"selected_epoch": train_cfg.epochs - 1})}


def _check_identity(saved: dict, current: dict, run_dir: Path) -> None:
    """--resume continues only the same run: name the first key that differs."""
    saved, current = _flatten(saved), _flatten(current)
    for key in sorted(set(saved) | set(current)):
        if saved.get(key) != current.get(key):
            raise UserError(f"--resume: the checkpoint in {run_dir} was made with a different {key} "
                            f"({_short(saved.get(key))} vs now {_short(current.get(key))}); rerun with --force to start over")


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
