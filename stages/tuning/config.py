"""[method], [train] and [sept] config sections: what stage two trains and how."""
from __future__ import annotations

from dataclasses import dataclass

from stages.fields import check_choice, check_range, opt


@dataclass(frozen=True)
class MethodConfig:
    name: str = opt("coop", "Prompt learner: zeroshot | coop | cocoop | kgcoop.")
    n_ctx: int = opt(16, "Learnable context vectors M.")
    ctx_init: str = opt("", "Initialise the context from this text (e.g. 'a sound of a'); empty = N(0, 0.02^2).")
    kg_weight: float = opt(8.0, "KgCoOp weight w of 1 - mean cos(z_i, zero-shot_i).")
    cocoop_chunk: int = opt(4, "CoCoOp: clips per text-tower chunk (bounds memory).")

    def __post_init__(self):
        check_choice("method", "name", self.name, ("zeroshot", "coop", "cocoop", "kgcoop"))
        check_range("method", "n_ctx", self.n_ctx, 1)
        check_range("method", "cocoop_chunk", self.cocoop_chunk, 1)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = opt(50, "Training epochs.")
    batch_size: int = opt(16, "Clips per step.")
    lr: float = opt(0.05, "SGD learning rate.")
    momentum: float = opt(0.9, "SGD momentum.")
    weight_decay: float = opt(5e-4, "SGD weight decay.")
    schedule: str = opt("cosine", "Learning-rate schedule: constant | cosine.")
    warmup_epochs: int = opt(1, "Constant-lr warm-up epochs before the cosine schedule.")
    warmup_lr: float = opt(1e-5, "Learning rate during warm-up.")
    amp: str = opt("auto", "Autocast on CUDA: auto (bf16 if supported) | bf16 | fp16 | off.")
    random_crop: bool = opt(False, "Random-crop augmentation of training clips (bypasses the feature cache).")
    eval_batch_size: int = opt(64, "Clips per evaluation batch.")

    def __post_init__(self):
        check_range("train", "epochs", self.epochs, 1)
        check_range("train", "batch_size", self.batch_size, 1)
        check_range("train", "lr", self.lr, 0.0)
        check_choice("train", "schedule", self.schedule, ("constant", "cosine"))
        check_choice("train", "amp", self.amp, ("auto", "bf16", "fp16", "off"))


@dataclass(frozen=True)
class SeptConfig:
    enabled: bool = opt(False, "Add the semantic expansion loss L_se.")
    lam: float = opt(1.0, "lambda: weight of L_se in L = L_method + lambda * L_se.")
    alpha: float = opt(1.0, "alpha: weight of L_intra.")
    beta: float = opt(1.0, "beta: weight of L_inter.")
    neighbors_per_step: int = opt(4, "Neighbors drawn per class per step (all N when N is smaller).")
    inter_negatives: str = opt("all", "Other classes' neighbors in L_inter: 'all' drawn, or 'hardest:h' closest by frozen distance.")
    generation_key: str = opt("", "Neighbor-store generation to read; empty = the one the [neighbors] section describes.")
    boundary_filter: bool = opt(True, "Train on a view of the stored neighbors without those closer (frozen, template mean) to another training class name than to their own; the store is never rewritten.")

    def __post_init__(self):
        from cache.errors import UserError

        check_range("sept", "lam", self.lam, 0.0)
        check_range("sept", "neighbors_per_step", self.neighbors_per_step, 1)
        v = self.inter_negatives
        if v != "all":
            ok = v.startswith("hardest:") and v.split(":", 1)[1].isdigit() and int(v.split(":", 1)[1]) > 0
            if not ok:
                raise UserError(f"config key sept.inter_negatives: {v!r} is not 'all' or 'hardest:h' with h > 0")
