"""`sept-pipeline tune`: prompt tuning (every method of stages/tuning/methods.py), optionally with the SEPT loss."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline.commands.common import backbone_help, config_options, emit_json, json_option
from stages.tuning.methods import method_names


def _summary_lines(m: dict) -> list[str]:
    sept = m["sept"]
    tag = f"{m['method']}{'+SEPT' if sept['active'] else ''} (seed {m['seed']}, {m['shots']} shots)"
    if m["protocol"] == "base2new":
        return [f"{m['dataset']} base2new {tag}: base {m['base_acc']:.2f}  new {m['new_acc']:.2f}  HM {m['hm']:.2f}"]
    if m["protocol"] == "fewshot":
        return [f"{m['dataset']} fewshot {tag}: acc {m['acc']:.2f}  macro-F1 {m['macro_f1']:.2f}"]
    mean = "none (no target outside the source's overlaps)" if m["mean_acc"] is None else f"{m['mean_acc']:.2f}"
    lines = [f"{m['dataset']} -> cross {tag}: mean target acc {mean} (source {m['source_acc']:.2f})"]
    lines += [f"  {name:<20} acc {r['acc']:.2f}  macro-F1 {r['macro_f1']:.2f}" for name, r in m["targets"].items()]
    lines += [f"  {name:<20} acc {r['acc']:.2f}  macro-F1 {r['macro_f1']:.2f}  (overlaps the source: not in the mean)"
              for name, r in m.get("overlapping_targets", {}).items()]
    if m.get("targets_excluded"):
        lines.append(f"  left out, sharing data with the source: {', '.join(m['targets_excluded'])} "
                     f"(name one in --targets to evaluate it apart)")
    if m.get("targets_missing"):
        lines.append(f"  not found under --data-root (skipped): {', '.join(m['targets_missing'])}")
    return lines


def _fold_tag(m: dict) -> str:
    return f"[{m['fold']}] " if m.get("fold") else ""


_HEADLINE = {"base2new": ("base_acc", "new_acc", "hm"), "fewshot": ("acc", "macro_f1"), "cross": ("mean_acc",)}


def fold_means(runs: list[dict]) -> dict:
    """Mean over folds of each headline number (a fold's figure counts once; what PALM averages per seed)."""
    keys = _HEADLINE[runs[0]["protocol"]]
    out = {"num_folds": len(runs), "folds": [m.get("fold", "") for m in runs]}
    for key in keys:
        values = [m[key] for m in runs if m.get(key) is not None]
        out[key] = sum(values) / len(values) if len(values) == len(runs) else None
    return out


def register(cli) -> None:
    @cli.command("tune")
    @click.option("--dataset", required=True, help="Dataset name (see `sept-pipeline datasets ls`) or a dataset .toml.")
    @click.option("--data-root", required=True, type=click.Path(path_type=Path),
                  help="The dataset folder, or a folder holding <dataset>/ (and the cross targets).")
    @click.option("--method", default=None, metavar="|".join(method_names()),
                  help="Prompt learner (default: method.name).")
    @click.option("--sept/--no-sept", default=None, help="Add the semantic expansion loss (default: sept.enabled).")
    @click.option("--protocol", required=True, metavar="base2new|cross|fewshot", help="Evaluation protocol.")
    @click.option("--targets", default=None, metavar="NAME,...",
                  help="cross: target datasets (default: every other known dataset found under --data-root).")
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
        mean), cross (train on DATASET, evaluate each target with its own class names; a target sharing
        recordings or classes with DATASET, as declared in the dataset configs, is left out unless named in
        --targets, and then reported apart), fewshot (all classes).
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
        from pipeline.protocols.folds import fold_out

        target_list = [t.strip() for t in targets.split(",") if t.strip()] if targets else None
        cfg, req = tune_inputs(cfg, TuneFlags(
            dataset=dataset, data_root=data_root, protocol=protocol, out=out, method=method, sept=sept,
            backbone=backbone, seed=seed, shots=shots, fold=fold, targets=target_list, cache_dir=cache_dir,
            resume=resume, force=force, progress=not as_json))
        every_fold = cfg.data.fold == "all"
        runs = run_folds(cfg, req)
        for m in runs:
            for warning in m.get("warnings", []):
                click.echo(f"warning: {warning}", err=True)
        if as_json:
            if every_fold:
                emit_json({"folds": [{**m, "out": str(fold_out(out, m.get("fold", ""), True))} for m in runs],
                           "mean_over_folds": fold_means(runs), "out": str(out)})
            else:
                emit_json({**runs[0], "out": str(out)})
            return
        for m in runs:
            run_out = fold_out(out, m.get("fold", ""), every_fold)
            if m.get("skipped"):
                click.echo(f"{run_out}: already finished (pass --force to redo it)")
            for line in _summary_lines(m):
                click.echo(_fold_tag(m) + line if every_fold else line)
            click.echo(f"wrote {run_out / 'metrics.json'}")
        if every_fold and len(runs) > 1:
            means = fold_means(runs)
            shown = "  ".join(f"{k} {means[k]:.2f}" for k in _HEADLINE[protocol] if means.get(k) is not None)
            click.echo(f"mean over {means['num_folds']} folds ({', '.join(means['folds'])}): {shown}")

