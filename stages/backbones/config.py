"""[backbone] and [text] config sections."""
from __future__ import annotations

import re
from dataclasses import dataclass

from stages.backbones.fingerprint import DTYPES
from stages.backbones.registry import AUTO, known_kinds, short_ids
from stages.fields import check_choice, check_range, opt

DEFAULT_TEMPLATES = [
    "a sound of a {}.",
    "an audio recording of {}.",
    "the sound of {}.",
    "a recording of a {}.",
    "this is a sound of {}.",
    "a clip of {} sounds.",
    "an audio clip of a {}.",
    "{} can be heard.",
]


@dataclass(frozen=True)
class BackboneConfig:
    id: str = opt("laion/clap-htsat-unfused", "Hub id, local folder or checkpoint file of the audio-language "
                                              f"model, or a short id ({', '.join(short_ids())}).")
    kind: str = opt("auto", "Adapter family: auto (what the id is: a short id, a local folder's model type or a "
                            f"checkpoint's keys; else clap) | {' | '.join(known_kinds())}; "
                            "`sept-pipeline backbones info --kinds` describes them.")
    text_pooling: str = opt("auto", "Which hidden states stand for a text: auto (the kind's own: clap first, "
                                    "text-dual mean; pengi, msclap: their originals' fixed rule) | first | "
                                    "eos | last (clap) | mean (text-dual: the attention-masked mean, as "
                                    "sentence-transformers).")
    device: str = opt("auto", "auto | cpu | cuda | cuda:N | mps.", identity=False)
    dtype: str = opt("float32", "Weights dtype: float32 | bfloat16 | float16.")
    text_batch_size: int = opt(64, "Texts per forward pass when encoding with the frozen text tower.",
                               identity=False)
    audio_batch_size: int = opt(16, "Clips per forward pass when encoding audio.", identity=False)

    def __post_init__(self):
        check_choice("backbone", "kind", self.kind, (AUTO, *known_kinds()))
        check_choice("backbone", "text_pooling", self.text_pooling, ("auto", "first", "eos", "last", "mean"))
        check_choice("backbone", "dtype", self.dtype, DTYPES)
        check_range("backbone", "text_batch_size", self.text_batch_size, 1)
        check_range("backbone", "audio_batch_size", self.audio_batch_size, 1)
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            from cache.errors import UserError

            raise UserError(f"config key backbone.device: {self.device!r} is not one of auto, cpu, cuda, cuda:N, mps")


@dataclass(frozen=True)
class TextConfig:
    templates: list = opt(DEFAULT_TEMPLATES, "Hand-crafted templates h_1..h_T; '{}' is the class or phrase.")
    dataset_template: bool = opt(False, "Use the dataset config's one hand-crafted `template` (jhyukjang/SubT's "
                                        "trainers/template.py for the audio benchmark) as the only template, in "
                                        "place of `templates`: zero-shot, KgCoOp's reference, SEPT's margins. "
                                        "A dataset without one is an error.")

    def __post_init__(self):
        from cache.errors import UserError

        if not self.templates:
            raise UserError("config key text.templates: empty list; give at least one template with '{}'")
        for t in self.templates:
            if not isinstance(t, str) or t.count("{}") != 1:
                raise UserError(f"config key text.templates: {t!r} must contain exactly one '{{}}' placeholder")
