"""Reference check: our MS-CLAP adapters against msclap's own model classes, on the same random weights.

The msclap package (PyPI msclap 1.3.4) does not install beside our stack (it needs torchaudio, transformers<5 and
numpy<2), so it runs in a separate throwaway venv, never in the project's:

    python3 -m venv /tmp/msclap-venv
    /tmp/msclap-venv/bin/pip install torch==2.13.0 && /tmp/msclap-venv/bin/pip install "transformers<5" "numpy<2" msclap
    python benchmarks/check_msclap_reference.py --reference-python /tmp/msclap-venv/bin/python

or, without downloading a second torch (as run for docs/benchmarks.md): a venv of the project venv's base python,
`pip install "transformers<5" "numpy<2" torchlibrosa pyyaml`, `pip install --no-deps msclap`, then a .pth file in
its site-packages naming the project venv's site-packages (appended after its own, so numpy<2 and transformers<5
win and torch comes from the project).

Steps, per kind (msclap-2022, msclap-2023), full key layout (msclap's classes fix the audio towers' sizes):
1. here: `make_random_checkpoint(kind, "full")`, then our adapter's text embeddings of fixed texts and audio
   embeddings of fixed 44.1 kHz clips of exactly the model's clip length (so no crop or repeat on either side);
2. the msclap venv (`--reference` mode of this file): msclap.models.clap.CLAP built with the values of msclap's own
   configs/config_20xx.yml, its text tower loaded by AutoModel from a local folder (msclap would fetch
   'gpt2' / 'bert-base-uncased' from the hub), then `load_state_dict` of the same .pth as msclap's CLAPWrapper
   does; the same token ids (our tokenizer's, padded to msclap's max_length as its wrapper does) and waveforms;
3. max abs difference of the raw projected embeddings and of the unit-normalised ones.

msclap's package __init__ imports CLAPWrapper, hence torchaudio, whose extension does not load beside the CPU
torch; the reference side therefore loads the `msclap.models` subpackage without running that __init__. What is
left out of the comparison is the wrapper's own preprocessing: file reading and resampling (torchaudio) and the
hub tokenizer.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

KINDS = ("msclap-2022", "msclap-2023")
TEXTS = ["a sound of a dog barking.", "rain falling on a tin roof", "an airplane taking off",
         "tabla", "someone plays a snare drum in a small room."]
TEXT_LEN = {"msclap-2022": 100, "msclap-2023": 77}
SECONDS = {"msclap-2022": 5, "msclap-2023": 7}
SAMPLE_RATE = 44_100
CONFIG = {  # msclap/configs/config_2022.yml and config_2023.yml (the values CLAPWrapper.load_clap passes to CLAP)
    "msclap-2022": dict(audioenc_name="Cnn14", sample_rate=44100, window_size=1024, hop_size=320, mel_bins=64,
                        fmin=50, fmax=14000, classes_num=527, out_emb=2048, transformer_embed_dim=768, d_proj=1024),
    "msclap-2023": dict(audioenc_name="HTSAT", sample_rate=44100, window_size=1024, hop_size=320, mel_bins=64,
                        fmin=50, fmax=8000, classes_num=527, out_emb=768, transformer_embed_dim=768, d_proj=1024),
}


def waveforms(kind: str) -> np.ndarray:
    """Three fixed clips of exactly the model's length: a tone, noise, a chirp (float32, [3, samples])."""
    t = np.arange(SECONDS[kind] * SAMPLE_RATE) / SAMPLE_RATE
    rng = np.random.default_rng(0)
    clips = [0.5 * np.sin(2 * np.pi * 440 * t), 0.1 * rng.standard_normal(t.size),
             0.4 * np.sin(2 * np.pi * (200 + 400 * t) * t)]
    return np.stack(clips).astype(np.float32)


def ours(kind: str, work: Path) -> Path:
    """Write the random checkpoint and our adapter's embeddings; return the .npz path."""
    import torch

    from stages.backbones.config import BackboneConfig
    from stages.backbones.factory import load_backbone
    from stages.backbones.checkpoint.random_model import make_random_checkpoint

    model = make_random_checkpoint(kind, "full", 0, work / kind)
    backbone = load_backbone(str(model), BackboneConfig(device="cpu"))
    waves = waveforms(kind)
    with torch.no_grad():
        tok = backbone.tokenize(TEXTS)
        text = backbone.encode_text(TEXTS).float().numpy()
        audio = backbone.encode_audio([torch.from_numpy(w) for w in waves]).float().numpy()
    pad = backbone.tokenizer.pad_token_id
    ids, mask = tok["input_ids"].numpy(), tok["attention_mask"].numpy()
    width = TEXT_LEN[kind]  # msclap's wrapper pads to max_length
    ids = np.pad(ids, ((0, 0), (0, width - ids.shape[1])), constant_values=pad)
    mask = np.pad(mask, ((0, 0), (0, width - mask.shape[1])), constant_values=0)
    out = work / f"{kind}-ours.npz"
    np.savez(out, input_ids=ids, attention_mask=mask, waves=waves, text=text, audio=audio,
             checkpoint=str(next(model.glob("*.pth"))))
    return out


def reference(kind: str, npz: Path, out: Path) -> None:
    """Run in the msclap venv: msclap's CLAP on the same weights and inputs."""
    import importlib.util
    import types

    import torch

    spec = importlib.util.find_spec("msclap")
    package = types.ModuleType("msclap")  # skip msclap/__init__.py (it imports torchaudio)
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["msclap"] = package
    from msclap.models.clap import CLAP
    from transformers import BertConfig, BertModel, GPT2Config, GPT2Model

    data = np.load(npz)
    state = torch.load(str(data["checkpoint"]), map_location="cpu", weights_only=True)["model"]
    # A local folder AutoModel can read, with the checkpoint's text-tower sizes; msclap's TextEncoder picks its
    # pooling from the name ('gpt' -> last token, else [CLS]); the weights are replaced by load_state_dict below.
    folder = out.parent / ("gpt2-local" if kind == "msclap-2023" else "bert-local")
    if kind == "msclap-2023":
        vocab, width = state["caption_encoder.base.wte.weight"].shape
        GPT2Model(GPT2Config(vocab_size=vocab, n_embd=width)).save_pretrained(folder)
    else:
        vocab, width = state["caption_encoder.base.embeddings.word_embeddings.weight"].shape
        BertModel(BertConfig(vocab_size=vocab, hidden_size=width)).save_pretrained(folder)
    clap = CLAP(text_model=str(folder), **CONFIG[kind])
    result = clap.load_state_dict(state, strict=False)  # as CLAPWrapper.load_clap
    clap.eval()
    tokens = {"input_ids": torch.from_numpy(data["input_ids"]).long(),
              "attention_mask": torch.from_numpy(data["attention_mask"]).long()}
    if kind == "msclap-2022":
        tokens["token_type_ids"] = torch.zeros_like(tokens["input_ids"])
    with torch.no_grad():
        text = clap.caption_encoder(tokens).float().numpy()
        audio = clap.audio_encoder(torch.from_numpy(data["waves"]))[0].float().numpy()
    np.savez(out, text=text, audio=audio)
    out.with_suffix(".json").write_text(json.dumps({"missing": result.missing_keys,
                                                    "unexpected": result.unexpected_keys}))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-python", help="python of the venv where msclap is installed")
    parser.add_argument("--reference", nargs=3, metavar=("KIND", "OURS_NPZ", "OUT_NPZ"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference:
        kind, npz, out = args.reference
        reference(kind, Path(npz), Path(out))
        return
    if not args.reference_python:
        parser.error("--reference-python is required")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for kind in KINDS:
            npz = ours(kind, work)
            ref = work / f"{kind}-ref.npz"
            subprocess.run([args.reference_python, __file__, "--reference", kind, str(npz), str(ref)], check=True)
            a, b = np.load(npz), np.load(ref)
            keys = json.loads(ref.with_suffix(".json").read_text())
            results[kind] = {
                "text_max_abs_diff": float(np.abs(a["text"] - b["text"]).max()),
                "text_unit_max_abs_diff": float(np.abs(_unit(a["text"]) - _unit(b["text"])).max()),
                "audio_max_abs_diff": float(np.abs(a["audio"] - b["audio"]).max()),
                "audio_unit_max_abs_diff": float(np.abs(_unit(a["audio"]) - _unit(b["audio"])).max()),
                "audio_max_abs": float(np.abs(b["audio"]).max()),
                # per clip (tone, noise, chirp): float32 front-end rounding shows on the clips with near-silent mel bands
                "audio_max_abs_diff_per_clip": [float(x) for x in np.abs(a["audio"] - b["audio"]).max(axis=1)],
                "msclap_missing_keys": keys["missing"], "msclap_unexpected_keys": keys["unexpected"],
            }
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
