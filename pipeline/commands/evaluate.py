"""`sept-pipeline evaluate`: zero-shot scoring of a dataset under a protocol, through the same run as `tune`."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline.commands.common import backbone_help, config_options, emit_json, json_option
from pipeline.protocols.table import FEWSHOT, protocol_names


def register(cli) -> None:
    @cli.command("evaluate")
    @click.option("--method", type=click.Choice(["zeroshot"]), default="zeroshot", show_default=True,
                  help="What to evaluate (tuned prompts are evaluated by `tune`).")
    @click.option("--dataset", required=True, help="Dataset name (see `sept-pipeline datasets ls`).")
    @click.option("--data-root", required=True, type=click.Path(path_type=Path),
                  help="The dataset folder, or a folder holding <dataset>/.")
    @click.option("--protocol", type=click.Choice(protocol_names()), default=FEWSHOT, show_default=True,
                  help="Which classes are scored on which clips (fewshot: every class on the test split).")
    @click.option("--targets", default=None, metavar="NAME,...", help="cross: target datasets (as `tune`).")
    @click.option("--backbone", default=None, help=backbone_help())
    @click.option("--out", required=True, type=click.Path(path_type=Path), help="Run directory to write.")
    @click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
                  help="Cache folder (default $SEPT_CACHE_DIR, else ~/.cache/sept-pipeline).")
    @click.option("--force", is_flag=True, help="Redo a run that already finished.")
    @config_options
    @json_option
    def evaluate(method, dataset, data_root, protocol, targets, backbone, out, cache_dir, force, cfg,
                 as_json) -> None:
        """Zero-shot evaluation: class embeddings = mean over the templates of [text], accuracy and macro-F1.

        \b
        The same run as `tune --method zeroshot` (nothing is trained): OUT/metrics.json is the same run record
        (protocol, manifest, times, per-class accuracy, fingerprints), which `report` reads like any other.
        \b
        Examples:
          sept-pipeline evaluate --method zeroshot --dataset demo --data-root data/ \\
              --backbone models/tiny-clap --out runs/zs-demo
          sept-pipeline evaluate --dataset esc50 --data-root /data/ESC-50 --protocol base2new \\
              --backbone laion/clap-htsat-unfused --out runs/zs-esc50 --set data.fold=fold1 --json
        """
        from pipeline.protocols import TuneFlags, run_tune, tune_inputs

        target_list = [t.strip() for t in targets.split(",") if t.strip()] if targets else None
        # A zero-shot run trains nothing: no SEPT, no few-shot draw (every training clip would be unused).
        outcome = run_tune(*tune_inputs(cfg, TuneFlags(
            dataset=dataset, data_root=data_root, protocol=protocol, out=out, method=method, sept=False,
            backbone=backbone, shots=0, targets=target_list, cache_dir=cache_dir, force=force,
            progress=not as_json)))
        for warning in outcome.record.warnings:
            click.echo(f"warning: {warning}", err=True)
        if as_json:
            emit_json(outcome.to_dict())
            return
        if outcome.skipped:
            click.echo(f"{outcome.out}: already finished (pass --force to redo it)")
        for line in outcome.record.summary_lines():
            click.echo(line)
        click.echo(f"wrote {Path(out) / 'metrics.json'}")
