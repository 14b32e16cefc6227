"""[data] config section."""
from __future__ import annotations

from dataclasses import dataclass

from cache.errors import UserError
from stages.data.specs import FOLD_NAME
from stages.fields import check_choice, check_range, opt

ALL_FOLDS = "all"  # every official fold of the dataset, one run each
CHANNELS = ("mean", "concat")


@dataclass(frozen=True)
class DataConfig:
    shots: int = opt(16, "Few-shot clips per class drawn for training (0 = all).")
    seed: int = opt(1, "Seed of the few-shot draw and of training (0 works).")
    base_fraction: float = opt(0.5, "Base share of sorted class names for base2new: base = first ceil(C*f).")
    fold: str = opt("", "Official fold used as the test split, the other folds as train (e.g. 'fold3'); 'all' = "
                        "every fold of the dataset, one run each (`tune --fold all`, sweeps' fold axis); empty = "
                        "train.csv/test.csv, or the first fold of a folded dataset.")
    eval_split: str = opt("test", "What base2new evaluates: 'test' (the test split: report these) or 'val' (a "
                                  "validation view carved out of the base classes' training items, on which "
                                  "hyperparameters are chosen; never reads a new class or a test item).")
    val_fraction: float = opt(0.3, "eval_split 'val': share of each validation-base class's training items held "
                                   "out as its validation test items (at least 1, at most all but one).")
    split_rule: str = opt("sorted", "How base2new splits the classes: sorted (PALM, CoOp, SubT: base = the first "
                                     "ceil(C * base_fraction) sorted names) | shuffle:<seed> (ZEBRA: the sorted names "
                                     "shuffled by a generator of that seed, base = the first floor(C * "
                                     "base_fraction); ZEBRA's scripts use shuffle:42).")
    channels: str = opt("mean", "Multi-channel audio: mean (the channels averaged to mono) | concat (channel after "
                                "channel in one signal, each resampled first, as Pengi's loader does with "
                                "reshape(-1); the clip's window is cut from that signal).")

    def __post_init__(self):
        check_range("data", "shots", self.shots, 0)
        check_range("data", "seed", self.seed, 0)
        check_range("data", "base_fraction", self.base_fraction, 0.0, 1.0)
        check_choice("data", "eval_split", self.eval_split, ("test", "val"))
        check_range("data", "val_fraction", self.val_fraction, 0.0, 1.0)
        check_choice("data", "channels", self.channels, CHANNELS)
        from stages.data.splits import parse_split_rule

        parse_split_rule(self.split_rule)
        if self.fold not in ("", ALL_FOLDS) and not FOLD_NAME.fullmatch(self.fold):
            raise UserError(f"config key data.fold: {self.fold!r} is not one of '', 'all' or a fold name "
                            f"such as 'fold3'")
