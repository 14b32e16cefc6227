"""`sept-pipeline backbones make-random|info`: write a random CLAP, or describe any backbone (or the kinds).

torch and transformers are imported inside the commands, so `sept-pipeline --help` stays fast.
"""
from __future__ import annotations

import click

from pipeline.commands.common import config_options, emit_json, json_option
from stages.backbones.registry import get_kind, is_checkpoint_kind, known_kinds


def backbone_summary(backbone) -> dict:
    """The facts `info` prints: what a run's provenance needs to know about a backbone."""
    audio = {"sample_rate": backbone.sample_rate, "clip_samples": backbone.clip_samples,
             "clip_seconds": backbone.clip_seconds} if backbone.item_modality == "audio" else {}
    return {
        "id": backbone.id,
        "kind": backbone.kind,
        "item_modality": backbone.item_modality,
        "fingerprint": backbone.fingerprint,
        **audio,
        "embed_dim": backbone.embed_dim,
        "text_width": backbone.text_width,
        "max_text_len": backbone.max_text_len,
        "text_pooling": backbone.text_pooling,
        "logit_scale": backbone.logit_scale(),
        "parameters": backbone.num_parameters(),
        "device": str(backbone.device),
        "dtype": str(backbone.dtype).removeprefix("torch."),
    }


def _print_table(rows: dict) -> None:
    width = max(len(k) for k in rows)
    for key, value in rows.items():
        click.echo(f"{key:<{width}}  {value}")


def _random_kinds() -> list[str]:
    """The kinds `make-random` can make (their records name a random maker), for --kind's choices."""
    return [name for name in known_kinds() if get_kind(name).makes_random]


def _random_kind_help() -> str:
    """--kind's help: what each kind's random model is, from the registry."""
    folders = [k for k in _random_kinds() if not is_checkpoint_kind(k)]
    files = [k for k in _random_kinds() if is_checkpoint_kind(k)]
    return (f"{', '.join(folders)}: a model folder in its hub layout; {', '.join(files)}: a folder with a .pth in "
            f"the real checkpoint's key layout (names and shapes; tiny: same keys, small widths) + tokenizer/.")


def _print_kinds(as_json: bool) -> None:
    kinds = [get_kind(name) for name in known_kinds()]
    rows = [{"kind": k.name, "item_modality": k.item_modality, "short_ids": list(k.short_ids), "summary": k.summary}
            for k in kinds]
    if as_json:
        emit_json(rows)
        return
    width = max(len(r["kind"]) for r in rows)
    for r in rows:
        click.echo(f"{r['kind']:<{width}}  items: {r['item_modality']:<5}  {r['summary']}")


def register(cli) -> None:
    @cli.group("backbones")
    def backbones_group() -> None:
        """Make and inspect audio-language model backbones (`backbones info --kinds` lists the kinds).

        \b
        Examples:
          sept-pipeline backbones make-random --size tiny --seed 0 --out models/tiny-clap
          sept-pipeline backbones info models/tiny-clap
          sept-pipeline backbones info laion/clap-htsat-unfused --json
          sept-pipeline backbones info --kinds
        """

    @backbones_group.command("make-random")
    @click.option("--kind", type=click.Choice(_random_kinds()), default="clap", show_default=True,
                  help=_random_kind_help())
    @click.option("--size", type=click.Choice(["tiny", "full"]), required=True,
                  help="tiny: small widths for tests and the demo (clap: 0.46 M params, 16 kHz / 2 s clips); "
                       "full: the real model's size, for timings (clap: ClapConfig() defaults, 153 M params, "
                       "48 kHz / 10 s).")
    @click.option("--seed", type=int, default=0, show_default=True,
                  help="Weight initialisation seed; the same seed gives the same weights bit for bit.")
    @click.option("--out", type=click.Path(file_okay=False), required=True,
                  help="New folder to write (must not exist); load it later as a backbone id.")
    @json_option
    def make_random(kind: str, size: str, seed: int, out: str, as_json: bool) -> None:
        """Write a seeded random backbone of a kind with a locally built tokenizer (no hub needed).

        The folder loads wherever a backbone id is accepted: for clap, the layout of a hub snapshot
        (config.json, model.safetensors, tokenizer and feature-extractor files); for a checkpoint kind,
        its .pth in the original's key layout plus tokenizer/.

        \b
        Examples:
          sept-pipeline backbones make-random --size tiny --seed 0 --out models/tiny-clap
          sept-pipeline backbones make-random --size full --seed 1 --out models/full-clap --json
          sept-pipeline backbones make-random --kind pengi --size tiny --out models/tiny-pengi
        """
        import json

        from stages.backbones.fingerprint import backbone_fingerprint

        path = get_kind(kind).make_random(size, seed, out)
        marker = json.loads(next(path.glob("sept_random_*.json")).read_text())  # every maker leaves one
        summary = {"path": str(path), "kind": kind, "size": size, "seed": seed, "parameters": marker["parameters"],
                   "fingerprint": backbone_fingerprint(path, kind)}
        if as_json:
            emit_json(summary)
        else:
            _print_table(summary)

    @backbones_group.command("info")
    @click.argument("model", required=False, metavar="[ID|PATH]")
    @click.option("--kinds", "list_kinds", is_flag=True,
                  help="List the backbone kinds (config key backbone.kind) instead of loading a backbone.")
    @config_options
    @json_option
    def info(model: str | None, list_kinds: bool, cfg, as_json: bool) -> None:
        """Load a backbone and print its kind, id, fingerprint, item format, dimensions and size.

        ID|PATH is a hub id (from the local Hugging Face cache, or fetched when the hub is
        reachable), a short id (a packaged model, or a checkpoint's published file, downloaded once
        unless HF_HUB_OFFLINE is set; `--kinds` lists them), a model folder or a checkpoint file;
        without it, the config's backbone.id. The kind comes from backbone.kind ('auto': what the id
        is).

        \b
        Examples:
          sept-pipeline backbones info models/tiny-clap
          sept-pipeline backbones info packaged:minilm-dual --json
          sept-pipeline backbones info msclap:2023 --json
          sept-pipeline backbones info laion/clap-htsat-unfused --json
          sept-pipeline backbones info --set backbone.id=models/tiny-clap --set backbone.device=cpu
          sept-pipeline backbones info --kinds
        """
        if list_kinds:
            _print_kinds(as_json)
            return
        from stages.backbones.factory import load_backbone

        summary = backbone_summary(load_backbone(model, cfg.backbone))
        if as_json:
            emit_json(summary)
        else:
            _print_table(summary)
