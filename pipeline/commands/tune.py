"""`sept-pipeline tune`: prompt tuning (every method of stages/tuning/methods.py), optionally with the SEPT loss."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline.commands.common import backbone_help, config_options, emit_json, json_option
from pipeline.protocols.table import protocol_names
from stages.tuning.methods import method_names


def _fold_tag(record) -> str:
    return f"[{record.fold}] " if record.fold else ""


def fold_means(records: list) -> dict:
    """Mean over folds of each headline number of the protocol table (a fold's figure counts once; what PALM
    averages per seed)."""
    out = {"num_folds": len(records), "folds": [r.fold for r in records]}
    heads = [r.headline() for r in records]
    for key in heads[0]:
        values = [h[key] for h in heads if h[key] is not None]
        out[key] = sum(values) / len(values) if len(values) == len(records) else None
    return out


def register(cli) -> None:
    @cli.command("tune")
    @click.option("--dataset", required=True, help="Dataset name (see `sept-pipeline datasets ls`) or a dataset .toml.")
    @click.option("--data-root", required=True, type=click.Path(path_type=Path),
                  help="The dataset folder, or a folder holding <dataset>/ (and the cross targets).")
    @click.option("--method", default=None, metavar="|".join(method_names()),
                  help="Prompt learner (default: method.name).")
    @click.option("--sept/--no-sept", default=None, help="Add the semantic expansion loss (default: sept.enabled).")
    @click.option("--protocol", required=True, metavar="|".join(protocol_names()), help="Evaluation protocol.")
    @click.option("--targets", default=None, metavar="NAME,...",
                  help="cross: target datasets (default: the other datasets of the source's suite found under "
                       "--data-root; the audio benchmark's 11 are suite palm11).")
    @click.option("--backbone", default=None, help=backbone_help())
    @click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
                  help="Cache folder: neighbor store, audio features, few-shot draws (default $SEPT_CACHE_DIR, "
                       "else ~/.cache/sept-pipeline).")
    @click.option("--fold", default=None, metavar="all|fold1|...",
                  help="Official fold used as the test split; 'all' runs every fold of the dataset, each in "
                       "OUT/<fold>/ (default: data.fold; empty = the dataset's only split, or its first fold).")
    @click.option("--seed", type=int, default=None, help="Seed of the few-shot draw and of training (default: data.seed).")
    @click.option("--shots", type=int, default=None, help="Training clips per class, 0 = all (default: data.shots).")
    @click.option("--out", required=True, type=click.Path(path_type=Path), help="Run directory to write.")
    @click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
    @click.option("--force", is_flag=True, help="Redo a run that already finished (or start an unfinished one over).")
    @config_options(recipe=True)
    @json_option
    def tune(dataset, data_root, method, sept, protocol, targets, backbone, cache_dir, fold, seed, shots, out,
             resume, force, cfg, as_json) -> None:
        """Tune prompts on a dataset and evaluate them under a protocol; write OUT/metrics.json.

        \b
        Protocols: base2new (train on the first half of the sorted classes; base, new and their harmonic
        mean), cross (train on DATASET, evaluate each target of its suite with the target's own class names on
        all its clips, every fold's test files; a target sharing clips with DATASET, as declared in the
        dataset configs, is left out unless named in --targets, and then reported apart), fewshot (all
        classes).
        Folded datasets (ESC50, US8K, TUT2017, ...): --fold all runs PALM's cross-validation, one run per fold.
        With --sept, neighbors come from the neighbor store (fill it with `sept-pipeline generate-neighbors`
        with the same --backbone and --cache-dir first); audio features are cached per backbone.
        A finished run is skipped unless --force; --resume continues an interrupted one exactly.
        Optimizer, schedule, epochs, batch, context and logit scale follow a named recipe (--recipe,
        default palm); metrics.json records the recipe and its source.
        \b
        Examples:
          sept-pipeline tune --dataset demo --data-root data/ --method coop --sept --protocol base2new \\
              --backbone models/tiny-clap --out runs/coop-sept --set train.epochs=5
          sept-pipeline tune --dataset esc50 --data-root /data --method cocoop --no-sept --protocol cross \\
              --targets urbansound8k,tut2017 --backbone laion/clap-htsat-unfused --seed 1 --out runs/cross \\
              --recipe cocoop-original
          sept-pipeline tune --dataset tut2017 --data-root /data --method coop --sept --protocol fewshot \\
              --fold all --backbone laion/clap-htsat-unfused --seed 1 --out runs/tut2017-coop-sept
          sept-pipeline tune --dataset ravdess --data-root /data --method kgcoop --sept --protocol fewshot \\
              --shots 16 --backbone laion/clap-htsat-unfused --out runs/kg-ravdess --resume --json
        """
        from pipeline.protocols import TuneFlags, run_folds, tune_inputs

        target_list = [t.strip() for t in targets.split(",") if t.strip()] if targets else None
        cfg, req = tune_inputs(cfg, TuneFlags(
            dataset=dataset, data_root=data_root, protocol=protocol, out=out, method=method, sept=sept,
            backbone=backbone, seed=seed, shots=shots, fold=fold, targets=target_list, cache_dir=cache_dir,
            resume=resume, force=force, progress=not as_json))
        every_fold = cfg.data.fold == "all"
        runs = run_folds(cfg, req)
        for o in runs:
            for warning in o.record.warnings:
                click.echo(f"warning: {warning}", err=True)
        if as_json:
            if every_fold:
                emit_json({"folds": [o.to_dict() for o in runs],
                           "mean_over_folds": fold_means([o.record for o in runs]), "out": str(out)})
            else:
                emit_json(runs[0].to_dict())
            return
        for o in runs:
            if o.skipped:
                click.echo(f"{o.out}: already finished (pass --force to redo it)")
            for line in o.record.summary_lines():
                click.echo(_fold_tag(o.record) + line if every_fold else line)
            click.echo(f"wrote {o.out / 'metrics.json'}")
        if every_fold and len(runs) > 1:
            means = fold_means([o.record for o in runs])
            shown = "  ".join(f"{k} {v:.2f}" for k, v in means.items()
                              if k not in ("num_folds", "folds") and v is not None)
            click.echo(f"mean over {means['num_folds']} folds ({', '.join(means['folds'])}): {shown}")

