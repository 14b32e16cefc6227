"""Random CLAP models that build offline: a seeded ClapModel plus a locally trained tokenizer.

No pretrained CLAP can be fetched here, so tests, the demo and performance checks use random ones
written in the same layout as a hub snapshot (config.json, model.safetensors, tokenizer files,
preprocessor_config.json), so they load through exactly the path a hub id takes.

- 'tiny': 0.46 M parameters (a small config whose shapes fit ClapModel's constraints); 16 kHz, 2 s clips
  to keep tests fast.
- 'full': ClapConfig() defaults (153 M parameters, laion/clap-htsat-unfused's architecture); 48 kHz,
  10 s clips as LAION. For honest timings of the real model size.

Same seed -> same weights bit for bit (one torch RNG stream, seeded before construction). The
tokenizer does not depend on the seed: it is trained on a fixed corpus, and BPE training is
deterministic.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from cache.atomic import atomic_dir
from cache.errors import UserError

SIZES = ("tiny", "full")
# RoBERTa's special tokens at RoBERTa's ids; ClapTextConfig's pad/bos/eos ids (1/0/2) assume them.
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
MARKER_FILE = "sept_random_clap.json"


def clap_config(size: str):
    """The ClapConfig of a random model of `size` ('tiny' | 'full')."""
    from transformers import ClapAudioConfig, ClapConfig, ClapTextConfig

    if size == "full":
        return ClapConfig()
    if size != "tiny":
        raise UserError(f"random CLAP size {size!r} is not one of {', '.join(SIZES)}")
    text = ClapTextConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=256, max_position_embeddings=80)
    # The audio tower needs hidden_size == patch_embeds_hidden_size * 2**(len(depths)-1).
    audio = ClapAudioConfig(hidden_size=128, patch_embeds_hidden_size=16, depths=[1, 1, 1, 1],
                            num_attention_heads=[2, 2, 4, 4], window_size=8, num_mel_bins=64, spec_size=256,
                            enable_fusion=False)
    return ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=32)


def feature_extractor(size: str):
    """The feature extractor saved with a random model; its sampling_rate/max_length_s are read back."""
    from transformers import ClapFeatureExtractor

    if size == "full":
        # laion/clap-htsat-unfused's front end: 48 kHz, 10 s, hop 10 ms, 64 mels from 50 Hz to 14 kHz.
        return ClapFeatureExtractor(feature_size=64, sampling_rate=48_000, hop_length=480, max_length_s=10,
                                    fft_window_size=1024, frequency_min=50, frequency_max=14_000,
                                    truncation="rand_trunc", padding="repeatpad")
    # Same 10 ms hop at 16 kHz; 2 s clips are 15x cheaper to featurise than 10 s at 48 kHz.
    return ClapFeatureExtractor(feature_size=64, sampling_rate=16_000, hop_length=160, max_length_s=2,
                                fft_window_size=1024, frequency_min=50, frequency_max=8_000,
                                truncation="rand_trunc", padding="repeatpad")


def train_tokenizer(vocab_size: int, model_max_length: int):
    """A RoBERTa-style byte-level BPE tokenizer with exactly `vocab_size` entries.

    Trained on the built-in corpus (stages/backbones/clap/tokenizer_corpus.py). A small corpus yields
    fewer merges than a 50k vocabulary has; the remaining ids are filled with entries no merge can
    produce, so the tokenizer's size equals the model's vocab_size as it does for a real checkpoint.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import RobertaTokenizer

    from stages.backbones.clap.tokenizer_corpus import corpus_lines

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(corpus_lines(), trainer=trainer)
    trained = json.loads(bpe.to_str())["model"]
    vocab: dict[str, int] = dict(trained["vocab"])
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["merges"]]
    for i in range(len(vocab), vocab_size):
        vocab[f"<unused{i}>"] = i
    if len(vocab) != vocab_size:  # the corpus outgrew the vocabulary: a bug in this module
        raise RuntimeError(f"tokenizer has {len(vocab)} entries, expected {vocab_size}")
    tok = RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)
    for want_id, token in enumerate(SPECIAL_TOKENS):
        assert tok.convert_tokens_to_ids(token) == want_id, token
    return tok


def _publishable_permissions(folder: Path) -> None:
    """Give the folder and its files the umask's usual modes (the temp folder is created 0700)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for path in folder.iterdir():
        os.chmod(path, 0o666 & ~umask)


def make_random_clap(size: str, seed: int, out: str | os.PathLike) -> Path:
    """Write a random ClapModel of `size` with seed `seed` to the new folder `out`; return it.

    The folder is built under a temporary name and renamed into place, so `out` either holds a
    complete model or does not exist. An existing `out` is a UserError (never overwritten).
    """
    if size not in SIZES:
        raise UserError(f"--size {size!r}: expected one of {', '.join(SIZES)}")
    out = Path(out)
    if out.exists():
        raise UserError(f"--out {out}: already exists; give a new folder (make-random never overwrites)")

    import torch
    from transformers import ClapModel, ClapProcessor

    config = clap_config(size)
    text = config.text_config
    # Positions start at pad_token_id + 1 (RoBERTa), so the longest input is max_position - pad - 1.
    tokenizer = train_tokenizer(text.vocab_size, text.max_position_embeddings - text.pad_token_id - 1)
    processor = ClapProcessor(feature_extractor=feature_extractor(size), tokenizer=tokenizer)

    # Seed a private generator state: fork_rng leaves the caller's global RNG untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ClapModel(config).eval()

    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        marker = {"size": size, "seed": seed, "made_by": "sept-pipeline backbones make-random",
                  "parameters": sum(p.numel() for p in model.parameters())}
        (tmp / MARKER_FILE).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
        _publishable_permissions(tmp)
    return out
