"""`sept-pipeline tune`: prompt tuning (zero-shot, CoOp, CoCoOp, KgCoOp), optionally with the SEPT loss."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline.commands.common import config_options, emit_json, json_option


def _apply_flags(cfg, method, sept, backbone, seed, shots):
    """Explicit flags win over --config/--set; each goes through the section's own validation."""
    if method is not None:
        cfg = cfg.replace("method", name=method)
    if sept is not None:
        cfg = cfg.replace("sept", enabled=sept)
    if backbone:
        cfg = cfg.replace("backbone", id=backbone)
    if seed is not None:
        cfg = cfg.replace("data", seed=seed)
    if shots is not None:
        cfg = cfg.replace("data", shots=shots)
    return cfg


def _summary_lines(m: dict) -> list[str]:
    sept = m["sept"]
    tag = f"{m['method']}{'+SEPT' if sept['active'] else ''} (seed {m['seed']}, {m['shots']} shots)"
    if m["protocol"] == "base2new":
        return [f"{m['dataset']} base2new {tag}: base {m['base_acc']:.2f}  new {m['new_acc']:.2f}  HM {m['hm']:.2f}"]
    if m["protocol"] == "fewshot":
        return [f"{m['dataset']} fewshot {tag}: acc {m['acc']:.2f}  macro-F1 {m['macro_f1']:.2f}"]
    lines = [f"{m['dataset']} -> cross {tag}: mean target acc {m['mean_acc']:.2f} (source {m['source_acc']:.2f})"]
    lines += [f"  {name:<20} acc {r['acc']:.2f}  macro-F1 {r['macro_f1']:.2f}" for name, r in m["targets"].items()]
    if m.get("targets_missing"):
        lines.append(f"  not found under --data-root (skipped): {', '.join(m['targets_missing'])}")
    return lines


def register(cli) -> None:
    @cli.command("tune")
    @click.option("--dataset", required=True, help="Dataset name (see `sept-pipeline datasets ls`) or a dataset .toml.")
    @click.option("--data-root", required=True, type=click.Path(path_type=Path),
                  help="The dataset folder, or a folder holding <dataset>/ (and the cross targets).")
    @click.option("--method", default=None, metavar="zeroshot|coop|cocoop|kgcoop",
                  help="Prompt learner (default: method.name).")
    @click.option("--sept/--no-sept", default=None, help="Add the semantic expansion loss (default: sept.enabled).")
    @click.option("--protocol", required=True, metavar="base2new|cross|fewshot", help="Evaluation protocol.")
    @click.option("--targets", default=None, metavar="NAME,...",
                  help="cross: target datasets (default: every other known dataset found under --data-root).")
    @click.option("--backbone", default=None, help="Hub id or local folder of the model (default: backbone.id).")
    @click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
                  help="Cache folder: neighbor store, audio features, few-shot draws (default $SEPT_CACHE_DIR, "
                       "else ~/.cache/sept-pipeline).")
    @click.option("--seed", type=int, default=None, help="Seed of the few-shot draw and of training (default: data.seed).")
    @click.option("--shots", type=int, default=None, help="Training clips per class, 0 = all (default: data.shots).")
    @click.option("--out", required=True, type=click.Path(path_type=Path), help="Run directory to write.")
    @click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
    @click.option("--force", is_flag=True, help="Redo a run that already finished (or start an unfinished one over).")
    @config_options(recipe=True)
    @json_option
    def tune(dataset, data_root, method, sept, protocol, targets, backbone, cache_dir, seed, shots, out, resume,
             force, cfg, as_json) -> None:
        """Tune prompts on a dataset and evaluate them under a protocol; write OUT/metrics.json.

        \b
        Protocols: base2new (train on the first half of the sorted classes; base, new and their harmonic
        mean), cross (train on DATASET, evaluate each target with its own class names), fewshot (all classes).
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
          sept-pipeline tune --dataset ravdess --data-root /data --method kgcoop --sept --protocol fewshot \\
              --shots 16 --backbone laion/clap-htsat-unfused --out runs/kg-ravdess --resume --json
        """
        from pipeline.protocols import TuneRequest, run_tune

        cfg = _apply_flags(cfg, method, sept, backbone, seed, shots)
        target_list = [t.strip() for t in targets.split(",") if t.strip()] if targets else None
        req = TuneRequest(dataset=dataset, data_root=data_root, protocol=protocol, out=out, targets=target_list,
                          cache_dir=cache_dir, resume=resume, force=force, progress=not as_json)
        metrics = run_tune(cfg, req)
        if as_json:
            emit_json({**metrics, "out": str(out)})
            return
        if metrics.get("skipped"):
            click.echo(f"{out}: already finished (pass --force to redo it)")
        for line in _summary_lines(metrics):
            click.echo(line)
        click.echo(f"wrote {Path(out) / 'metrics.json'}")
