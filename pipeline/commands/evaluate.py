"""`sept-pipeline evaluate`: score a method on a dataset split and write a run directory."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline.commands.common import backbone_help, config_options, emit_json, json_option


def register(cli) -> None:
    @cli.command("evaluate")
    @click.option("--method", type=click.Choice(["zeroshot"]), default="zeroshot", show_default=True,
                  help="What to evaluate (tuned prompts are evaluated by `tune`).")
    @click.option("--dataset", required=True, help="Dataset name (see `sept-pipeline datasets ls`).")
    @click.option("--data-root", required=True, type=click.Path(path_type=Path),
                  help="The dataset folder, or a folder holding <dataset>/.")
    @click.option("--backbone", default=None, help=backbone_help())
    @click.option("--out", required=True, type=click.Path(path_type=Path), help="Run directory to write.")
    @click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
    @click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
                  help="Cache folder (default $SEPT_CACHE_DIR, else ~/.cache/sept-pipeline).")
    @config_options
    @json_option
    def evaluate(method, dataset, data_root, backbone, out, split, cache_dir, cfg, as_json) -> None:
        """Zero-shot evaluation: class embeddings = mean over the templates of [text], accuracy and macro-F1.

        \b
        Writes OUT/metrics.json (acc, macro_f1, per_class_acc, num_clips, backbone_fingerprint) and OUT/config.toml.
        \b
        Examples:
          sept-pipeline evaluate --method zeroshot --dataset demo --data-root data/ \\
              --backbone models/tiny-clap --out runs/zs-demo
          sept-pipeline evaluate --dataset esc50 --data-root /data/ESC-50 \\
              --backbone laion/clap-htsat-unfused --out runs/zs-esc50 --set data.fold=fold1 --json
        """
        from pipeline.zero_shot import evaluate_zeroshot

        if backbone:
            cfg = cfg.replace("backbone", id=backbone)
        metrics = evaluate_zeroshot(cfg, dataset, data_root, out, split=split, cache_dir=cache_dir,
                                    progress=not as_json)
        if as_json:
            emit_json({**metrics, "out": str(out)})
        else:
            click.echo(f"{metrics['dataset']} {split}: acc {metrics['acc']:.2f}  macro-F1 {metrics['macro_f1']:.2f}  "
                       f"({metrics['num_clips']} clips, {metrics['num_classes']} classes)")
            click.echo(f"wrote {Path(out) / 'metrics.json'}")
