"""[method], [train] and [sept] config sections: what stage two trains and how.

The defaults are PALM's recipe on the audio benchmark (configs/recipes/palm.toml states the source); the
other named recipes under configs/recipes/ are layers over them (docs/method.md lists what each changes).
"""
from __future__ import annotations

from dataclasses import dataclass

from stages.fields import check_choice, check_range, opt
from stages.tuning.run_log import check_sinks, default_sinks

AMP_CHOICES = ("auto", "bf16", "fp16", "off")
COCOOP_BIAS_CHOICES = ("none", "batch_mean")
EVAL_CROPS = ("fixed", "random")
TOWER_MODES = ("eval", "train", "train_bn_eval")
SELECT_RULES = ("last", "lowest_train_loss")


@dataclass(frozen=True)
class MethodConfig:
    name: str = opt("coop", "Prompt learner, one of the method table's names (stages/tuning/methods.py; "
                            "`sept-pipeline tune --help` lists them).")
    n_ctx: int = opt(16, "Learnable context vectors M.")
    ctx_init: str = opt("", "Initialise the context from this text (e.g. 'a sound of a'); empty = N(0, 0.02^2).")
    kg_weight: float = opt(8.0, "KgCoOp weight w of 1 - mean cos(z_i, zero-shot_i).")
    kg_templates: list = opt([], "KgCoOp: templates of the zero-shot reference zero-shot_i (the original uses one); "
                                 "empty = every [text] template, averaged.")
    cocoop_chunk: int = opt(4, "CoCoOp: clips per text-tower chunk (bounds memory).", identity=False)
    dept_weight: float = opt(0.7, "DePT: weight w of the base head in (1 - w) CE(similarity) + w CE(head) and in "
                                  "the fused base-class logits.")
    dept_lr_mult: float = opt(6.5, "DePT: learning rate of the head and feature transforms, times the prompt's.")
    zebra_weight: float = opt(0.5, "ZEBRA: weight w of the zero-shot logits in (1 - w) prompt logits + w zero-shot "
                                   "logits (asif-hanif/zebra: 0.5).")
    zebra_entropy: float = opt(0.05, "ZEBRA: weight of the self-entropy subtracted from the cross-entropy "
                                     "(CE - weight * H: entropy maximised; asif-hanif/zebra: 0.05).")
    zebra_templates: list = opt(["The is a recording of  {}."],
                                "ZEBRA: templates of its zero-shot logits (its one prompt, PALM's text, verbatim); "
                                "empty = every [text] template, averaged.")
    palm_unseen: str = opt("refuse", "PALM on classes it never trained on (base2new's new half, cross targets): "
                                     "refuse | zeroshot (score them with lambda = 0, labelled so).")

    def __post_init__(self):
        from cache.errors import UserError
        from stages.tuning.methods import method_names  # torch-free: the method table is the one list

        check_choice("method", "name", self.name, method_names())
        check_range("method", "n_ctx", self.n_ctx, 1)
        check_range("method", "cocoop_chunk", self.cocoop_chunk, 1)
        check_range("method", "dept_weight", self.dept_weight, 0.0, 1.0)
        check_range("method", "dept_lr_mult", self.dept_lr_mult, 0.0)
        check_choice("method", "palm_unseen", self.palm_unseen, ("refuse", "zeroshot"))
        check_range("method", "zebra_weight", self.zebra_weight, 0.0, 1.0)
        check_range("method", "zebra_entropy", self.zebra_entropy, 0.0)
        for key in ("kg_templates", "zebra_templates"):
            for t in getattr(self, key):
                if not isinstance(t, str) or t.count("{}") != 1:
                    raise UserError(f"config key method.{key}: {t!r} must contain exactly one '{{}}' placeholder")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = opt(50, "Training epochs.")
    batch_size: int = opt(16, "Clips per step.")
    lr: float = opt(0.05, "SGD learning rate.")
    momentum: float = opt(0.9, "SGD momentum.")
    weight_decay: float = opt(0.0, "SGD weight decay.")
    schedule: str = opt("constant", "Learning-rate schedule: constant | cosine (Dassl's: decays over all `epochs`).")
    warmup_epochs: int = opt(0, "Epochs at the constant warmup_lr before the schedule starts.")
    warmup_lr: float = opt(1e-5, "Learning rate during warm-up.")
    logit_scale: float | str = opt(100.0, "Scale of the cosine logits: a number, or 'checkpoint' for the "
                                          "backbone's own learned scale.")
    amp: str = opt("auto", "Autocast of the towers: auto (CUDA: bf16 if supported, else fp16; CPU: off) | bf16 | "
                           "fp16 (CUDA only) | off. Losses are always computed in float32.")
    random_crop: bool = opt(False, "Random-crop augmentation of training clips (bypasses the feature cache).")
    eval_crop: str = opt("fixed", "Window of a test clip longer than the tower's: fixed (the centre, cached: the same "
                                  "clip always gives the same embedding) | random (a window drawn from the run's "
                                  "seed, as PALM's loader crops at test; bypasses the feature cache).")
    tower_mode: str = opt("eval", "Mode of the frozen towers while training: eval (dropout off, BatchNorm on its "
                                  "stored statistics; features cached) | train (PALM's run_epoch: model.train() on the "
                                  "whole model, so dropout, drop-path, SpecAugment and BatchNorm batch statistics are "
                                  "active and BN running statistics move, which changes the test features; audio is "
                                  "encoded every step, never cached; evaluation runs the towers in eval mode, as "
                                  "PALM's run_evaluation does) | train_bn_eval (the same with BatchNorm kept in eval "
                                  "mode, as jhyukjang/SubT's run_epoch: model.train() then bn0.eval()).")
    select: str = opt("last", "Which epoch's prompt is evaluated: last | lowest_train_loss (the epoch with the lowest "
                              "mean training loss, as jhyukjang/SubT's run_training keeps; the run's summary records "
                              "the chosen epoch as train.selected_epoch).")
    eval_batch_size: int = opt(64, "Clips per evaluation batch.", identity=False)
    log_to: list = opt(default_sinks(), "Where each epoch's scalars go (losses, lr; accuracies after evaluation): "
                                        "jsonl (train_log.jsonl, always) | tensorboard (events under "
                                        "<run>/tensorboard) | wandb (offline, under <run>/wandb). Default: jsonl, "
                                        "plus tensorboard when installed.", identity=False)

    def __post_init__(self):
        from cache.errors import UserError

        check_range("train", "epochs", self.epochs, 1)
        check_range("train", "batch_size", self.batch_size, 1)
        check_range("train", "lr", self.lr, 0.0)
        check_range("train", "weight_decay", self.weight_decay, 0.0)
        check_range("train", "warmup_epochs", self.warmup_epochs, 0)
        check_choice("train", "schedule", self.schedule, ("constant", "cosine"))
        check_choice("train", "amp", self.amp, AMP_CHOICES)
        check_choice("train", "eval_crop", self.eval_crop, EVAL_CROPS)
        check_choice("train", "tower_mode", self.tower_mode, TOWER_MODES)
        check_choice("train", "select", self.select, SELECT_RULES)
        check_sinks(self.log_to)
        s = self.logit_scale
        if (s != "checkpoint") if isinstance(s, str) else not s > 0:
            raise UserError(f"config key train.logit_scale: {s!r} is not 'checkpoint' or a number > 0")


@dataclass(frozen=True)
class SeptConfig:
    enabled: bool = opt(False, "Add the semantic expansion loss L_se.")
    lam: float = opt(1.0, "lambda: weight of L_se in L = L_method + lambda * L_se.")
    alpha: float = opt(1.0, "alpha: weight of L_intra.")
    beta: float = opt(1.0, "beta: weight of L_inter.")
    neighbors_per_step: int | str = opt("all", "Neighbors per class in each step's L_se: 'all' (every stored "
                                               "neighbor) or a number drawn at random per step (faster).")
    inter_negatives: str = opt("all", "Other classes' neighbors in L_inter: 'all' drawn, or 'hardest:h' closest by frozen distance.")
    cocoop_bias: str = opt("none", "CoCoOp: context of L_se's prompts: none (plain context) | batch_mean (plus the "
                                   "batch's mean meta-net bias, so L_se also trains the meta-net).")
    generation: str = opt("auto", "Neighbor-store generation to train with: 'auto' (the one generation that stores "
                                  "every training class, embedded for this backbone under these templates), a "
                                  "generation key, or a name (generate-neighbors --name, neighbors import --name). "
                                  "Read from the store alone: tune never needs the LLM.")
    boundary_filter: bool = opt(True, "Train on a view of the stored neighbors without those closer (frozen, template mean) to another training class name than to their own; the store is never rewritten.")
    same_text_cos: float = opt(0.97, "The class boundary is off when the training class names' mean frozen cosine "
                                     "is at or above this: the encoder does not separate them (a random tower).")

    def __post_init__(self):
        from cache.errors import UserError

        check_range("sept", "lam", self.lam, 0.0)
        k = self.neighbors_per_step
        if k != "all" and (isinstance(k, str) or k < 1):
            raise UserError(f"config key sept.neighbors_per_step: {k!r} is not 'all' or a whole number >= 1")
        check_choice("sept", "cocoop_bias", self.cocoop_bias, COCOOP_BIAS_CHOICES)
        check_range("sept", "same_text_cos", self.same_text_cos, -1.0, 1.0)
        if not isinstance(self.generation, str) or not self.generation.strip():
            raise UserError(f"config key sept.generation: {self.generation!r} is not 'auto', a generation key or a "
                            f"name (`sept-pipeline neighbors ls` lists them)")
        v = self.inter_negatives
        if v != "all":
            ok = v.startswith("hardest:") and v.split(":", 1)[1].isdigit() and int(v.split(":", 1)[1]) > 0
            if not ok:
                raise UserError(f"config key sept.inter_negatives: {v!r} is not 'all' or 'hardest:h' with h > 0")
