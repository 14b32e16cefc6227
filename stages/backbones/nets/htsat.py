"""HTS-AT as Pengi (and MS-CLAP 2023) ship it, run by transformers' ClapAudioModel.

HTS-AT (Chen et al. 2022) is a Swin transformer over a log-mel image. transformers' ClapAudioModel is a
port of the same network (LAION CLAP uses HTS-AT too), with other module names and a fused attention
projection split into query/key/value. We reuse it and convert names through `htsat_rules`.

What the original checkpoint holds and where it goes (source prefix 'P' = the audio encoder's base):
    P.spectrogram_extractor.stft.conv_{real,imag}.weight  dropped: torchlibrosa's fixed DFT kernels
                                                          (a hann-windowed DFT; torch.stft computes it)
    P.logmel_extractor.melW                               the mel filterbank: our log-mel front end uses it
    P.bn0.*                                               audio_encoder.batch_norm.*
    P.patch_embed.{proj,norm}.*                           audio_encoder.patch_embed.{proj,norm}.*
    P.layers.i.blocks.j.norm1 / norm2                     ...layernorm_before / layernorm_after
    P.layers.i.blocks.j.attn.qkv (3C x C, q|k|v rows)     ...attention.self.query / key / value
    P.layers.i.blocks.j.attn.proj                         ...attention.output.dense
    P.layers.i.blocks.j.attn.relative_position_*          bias table kept; the index is an optional buffer
    P.layers.i.blocks.j.attn_mask                         dropped: the shifted-window mask, recomputed
    P.layers.i.blocks.j.mlp.fc1 / fc2                     ...intermediate.dense / output.dense
    P.layers.i.downsample.{reduction,norm}                ...downsample.{reduction,norm}
    P.norm                                                audio_encoder.norm
    P.tscam_conv, P.head                                  dropped: the AudioSet classifier; the
                                                          embedding is the pooled latent before it
"""
from __future__ import annotations

import torch

from stages.backbones.checkpoint.read import DROP, KeyRule

# Pengi's HTS-AT (models/htsat.py defaults with its config.py): 256x256 spectrogram image, 4x4 patches,
# embed 96 doubling per stage to 768, Swin depths 2-2-6-2, window 8, AudioSet's 527 classes in the head.
FULL = {"embed_dim": 96, "depths": (2, 2, 6, 2), "heads": (4, 8, 16, 32), "window": 8, "spec_size": 256,
        "classes": 527}
# Tiny: the same depths (so the same key names, shifted-window masks included), narrow widths.
TINY = {"embed_dim": 16, "depths": (2, 2, 6, 2), "heads": (2, 2, 4, 4), "window": 8, "spec_size": 256,
        "classes": 10}


def clap_audio_config(arch: dict, mel_bins: int, drop_path_rate: float = 0.0):
    """`drop_path_rate`: HTS-AT's stochastic depth, active only with train-mode towers (Pengi's: 0.1)."""
    from transformers import ClapAudioConfig

    return ClapAudioConfig(hidden_size=arch["embed_dim"] * 2 ** (len(arch["depths"]) - 1),
                           patch_embeds_hidden_size=arch["embed_dim"], depths=list(arch["depths"]),
                           num_attention_heads=list(arch["heads"]), window_size=arch["window"],
                           num_mel_bins=mel_bins, spec_size=arch["spec_size"], enable_fusion=False,
                           hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, drop_path_rate=drop_path_rate)


class SpecAugment(torch.nn.Module):
    """HTS-AT's training-time SpecAugment (torchlibrosa's SpecAugmentation, which HTS-AT's forward applies after
    bn0 whenever the module is in train mode): per clip, `time_stripes` stripes of 0..time_width-1 frames and
    then `freq_stripes` stripes of 0..freq_width-1 mel bins set to zero, widths and starts from torch's global
    generator. Only in train mode; identity otherwise."""

    def __init__(self, time_width: int = 64, time_stripes: int = 2, freq_width: int = 8, freq_stripes: int = 2):
        super().__init__()
        self.plan = ((2, time_width, time_stripes), (3, freq_width, freq_stripes))  # [B, C, T, F] axes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, frames, mels]; zeroed in place (no gradient flows through a frozen tower)."""
        if not self.training:
            return x
        for axis, width, stripes in self.plan:
            total = x.shape[axis]
            for clip in x:
                for _ in range(stripes):
                    size = int(torch.randint(0, width, (1,)))
                    start = int(torch.randint(0, total - size, (1,)))
                    clip.narrow(axis - 1, start, size).zero_()
        return x

    def after_batch_norm(self, module, inputs, output: torch.Tensor) -> torch.Tensor:
        """A forward hook for ClapAudioEncoder.batch_norm, whose output is [B, mels, frames, C]."""
        return self.forward(output.transpose(1, 3)).transpose(1, 3)


def htsat_arch_from_state(state: dict, prefix: str) -> dict:
    """The HTS-AT architecture (embed width, depths, heads per stage) read off a checkpoint's shapes under
    `prefix` (e.g. 'audio_encoder.base.htsat'); window and spectrogram size are the originals' fixed ones."""
    depths, heads = [], []
    for i in range(8):
        blocks = {k.split(".")[6] for k in state if k.startswith(f"{prefix}.layers.{i}.blocks.")}
        if not blocks:
            break
        depths.append(len(blocks))
        heads.append(int(state[f"{prefix}.layers.{i}.blocks.0.attn.relative_position_bias_table"].shape[1]))
    return {"embed_dim": int(state[f"{prefix}.patch_embed.proj.weight"].shape[0]), "depths": tuple(depths),
            "heads": tuple(heads), "window": FULL["window"], "spec_size": FULL["spec_size"], "classes": 0}


def htsat_rules(src: str, dst: str, mel_dst: str) -> list[KeyRule]:
    """Rules from an original HTS-AT under prefix `src` to a ClapAudioModel under `dst` (mel bank: `mel_dst`)."""
    s, d = src.replace(".", r"\."), dst + ".audio_encoder"
    blk = s + r"\.layers\.(\d+)\.blocks\.(\d+)\."
    ours = d + ".layers.{1}.blocks.{2}."
    return [
        KeyRule(s + r"\.spectrogram_extractor\.stft\.conv_(real|imag)\.weight", DROP,
                reason="fixed DFT kernels; torch.stft computes the same transform"),
        KeyRule(s + r"\.logmel_extractor\.melW", (mel_dst,)),
        KeyRule(s + r"\.bn0\.(\w+)", (d + ".batch_norm.{1}",)),
        KeyRule(s + r"\.patch_embed\.(proj|norm)\.(weight|bias)", (d + ".patch_embed.{1}.{2}",)),
        KeyRule(blk + r"norm1\.(weight|bias)", (ours + "layernorm_before.{3}",)),
        KeyRule(blk + r"norm2\.(weight|bias)", (ours + "layernorm_after.{3}",)),
        KeyRule(blk + r"attn\.qkv\.(weight|bias)",
                tuple(ours + f"attention.self.{part}.{{3}}" for part in ("query", "key", "value")), split=3),
        KeyRule(blk + r"attn\.proj\.(weight|bias)", (ours + "attention.output.dense.{3}",)),
        KeyRule(blk + r"attn\.relative_position_bias_table", (ours + "attention.self.relative_position_bias_table",)),
        KeyRule(blk + r"attn_mask", DROP, reason="shifted-window mask, recomputed from the resolution"),
        KeyRule(blk + r"mlp\.fc1\.(weight|bias)", (ours + "intermediate.dense.{3}",)),
        KeyRule(blk + r"mlp\.fc2\.(weight|bias)", (ours + "output.dense.{3}",)),
        KeyRule(s + r"\.layers\.(\d+)\.downsample\.(reduction|norm)\.(weight|bias)",
                (d + ".layers.{1}.downsample.{2}.{3}",)),
        KeyRule(s + r"\.norm\.(weight|bias)", (d + ".norm.{1}",)),
        KeyRule(s + r"\.(tscam_conv|head)\.(weight|bias)", DROP,
                reason="the AudioSet classification head; the embedding is taken before it"),
    ]


def htsat_source_layout(prefix: str, arch: dict, mel_bins: int, n_fft: int) -> dict[str, tuple]:
    """Names and shapes of an original HTS-AT state dict, derived from the original module structure.

    Used to write random checkpoints with the real key layout (the real weights cannot be fetched
    here) and committed as a fixture for Pengi (tests/stages/backbones/fixtures/).
    """
    p, c0, nl = prefix, arch["embed_dim"], len(arch["depths"])
    freq_bins = n_fft // 2 + 1
    out = {f"{p}.spectrogram_extractor.stft.conv_real.weight": (freq_bins, 1, n_fft),
           f"{p}.spectrogram_extractor.stft.conv_imag.weight": (freq_bins, 1, n_fft),
           f"{p}.logmel_extractor.melW": (freq_bins, mel_bins)}
    for name in ("weight", "bias", "running_mean", "running_var"):
        out[f"{p}.bn0.{name}"] = (mel_bins,)
    out[f"{p}.bn0.num_batches_tracked"] = ()
    out[f"{p}.patch_embed.proj.weight"] = (c0, 1, 4, 4)
    for name in ("proj.bias", "norm.weight", "norm.bias"):
        out[f"{p}.patch_embed.{name}"] = (c0,)
    resolution = arch["spec_size"] // 4
    window = arch["window"]
    for i, (depth, heads) in enumerate(zip(arch["depths"], arch["heads"])):
        dim, res = c0 * 2 ** i, resolution // 2 ** i
        win = min(window, res)
        for j in range(depth):
            b = f"{p}.layers.{i}.blocks.{j}"
            for norm in ("norm1", "norm2"):
                out[f"{b}.{norm}.weight"] = out[f"{b}.{norm}.bias"] = (dim,)
            out[f"{b}.attn.relative_position_bias_table"] = ((2 * win - 1) ** 2, heads)
            out[f"{b}.attn.relative_position_index"] = (win * win, win * win)
            out[f"{b}.attn.qkv.weight"], out[f"{b}.attn.qkv.bias"] = (3 * dim, dim), (3 * dim,)
            out[f"{b}.attn.proj.weight"], out[f"{b}.attn.proj.bias"] = (dim, dim), (dim,)
            out[f"{b}.mlp.fc1.weight"], out[f"{b}.mlp.fc1.bias"] = (4 * dim, dim), (4 * dim,)
            out[f"{b}.mlp.fc2.weight"], out[f"{b}.mlp.fc2.bias"] = (dim, 4 * dim), (dim,)
            if j % 2 == 1 and res > window:  # odd blocks shift, unless one window covers the map
                out[f"{b}.attn_mask"] = ((res // win) ** 2, win * win, win * win)
        if i < nl - 1:
            out[f"{p}.layers.{i}.downsample.reduction.weight"] = (2 * dim, 4 * dim)
            out[f"{p}.layers.{i}.downsample.norm.weight"] = out[f"{p}.layers.{i}.downsample.norm.bias"] = (4 * dim,)
    top = c0 * 2 ** (nl - 1)
    out[f"{p}.norm.weight"] = out[f"{p}.norm.bias"] = (top,)
    classes = arch["classes"]
    freq_groups = arch["spec_size"] // 2 ** (nl - 1) // 4 // (arch["spec_size"] // mel_bins)
    out[f"{p}.tscam_conv.weight"], out[f"{p}.tscam_conv.bias"] = (classes, top, freq_groups, 3), (classes,)
    out[f"{p}.head.weight"], out[f"{p}.head.bias"] = (classes, classes), (classes,)
    return out


class LogMel(torch.nn.Module):
    """torchlibrosa's front end as HTS-AT was trained with it, on torch.stft.

    Power spectrogram (periodic hann window, centred frames, reflect padding), times the
    checkpoint's mel filterbank (librosa's slaney mel), then 10*log10(max(x, 1e-10)) (ref 1, no top_db).
    Output [B, 1, frames, mel_bins], what the audio tower's BatchNorm expects.
    """

    def __init__(self, n_fft: int, hop: int, mel_filters: torch.Tensor):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)
        self.mel_filters = torch.nn.Parameter(mel_filters.clone(), requires_grad=False)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(waves.float(), self.n_fft, hop_length=self.hop, win_length=self.n_fft,
                          window=self.window, center=True, pad_mode="reflect", return_complex=True)
        power = spec.real ** 2 + spec.imag ** 2  # [B, freq, frames]
        mel = torch.matmul(power.transpose(1, 2), self.mel_filters.float())
        return (10.0 * torch.log10(torch.clamp(mel, min=1e-10))).unsqueeze(1)


def slaney_mel_filters(sample_rate: int, n_fft: int, mel_bins: int, fmin: float, fmax: float) -> torch.Tensor:
    """[n_fft//2+1, mel_bins]: librosa.filters.mel(...).T (slaney scale and area norm), via transformers."""
    from transformers.audio_utils import mel_filter_bank

    bank = mel_filter_bank(num_frequency_bins=n_fft // 2 + 1, num_mel_filters=mel_bins, min_frequency=fmin,
                           max_frequency=fmax, sampling_rate=sample_rate, norm="slaney", mel_scale="slaney")
    return torch.from_numpy(bank).float()
