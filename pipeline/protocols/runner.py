"""One `tune` run: plan -> backbone -> learner -> neighbors -> features -> train -> evaluate -> metrics.json.

Checks that need no training come first (classes without clips, a context that does not fit the tower,
neighbors missing from the store), so a bad run stops in seconds with one line, before any epoch.
The run directory holds the resolved config, the train log, checkpoints, the final prompt and, written
last, metrics.json: its presence means the run finished, and a finished run is skipped unless --force.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from cache.errors import UserError
from cache.fingerprint import cache_root, sha256_json
from cache.lock import file_lock
from pipeline.config_loader import Config, non_identity_keys, with_dataset_template
from pipeline.protocols.plans import Plan, check_protocol, make_plan
from pipeline.runs import METRICS, RunDir
from stages.tuning.methods import check_run
from stages.data.config import ALL_FOLDS

# Keys of the resolved config that do not change what a run computes (marked on their fields): a resume may
# differ in them.
_NOT_IDENTITY = {tuple(key.split(".", 1)) for key in non_identity_keys()}
LOG_FOLDERS = ("tensorboard", "wandb")  # stages/tuning/run_log.py's sinks
RUN_FILES = ("train_log.jsonl", "prompt.safetensors", "base_new_split.json", "config.toml", "config.json",
             "tower_buffers.safetensors")


@dataclass
class TuneRequest:
    dataset: str
    data_root: Path
    protocol: str
    out: Path
    targets: Sequence[str] | None = None
    cache_dir: Path | None = None
    resume: bool = False
    force: bool = False
    progress: bool = True


def run_tune(cfg: Config, req: TuneRequest) -> dict:
    check_protocol(req.protocol)
    check_run(cfg.method, req.protocol, cfg.sept.enabled and cfg.sept.lam > 0)  # what the method cannot do
    if cfg.data.fold == ALL_FOLDS:
        raise UserError("data.fold 'all': one run covers one fold; run every fold with `sept-pipeline tune --fold all` "
                        "(one run folder per fold) or a sweep's fold axis")
    if req.resume and req.force:
        raise UserError("--resume and --force: choose one (continue the checkpoint, or start over)")
    run = RunDir(req.out)
    if run.finished() and not req.force:
        metrics = run.read_metrics()
        metrics["skipped"] = True
        return metrics
    run.ensure()
    try:
        with file_lock(run.path / ".lock", timeout=0.5):
            return _run_locked(cfg, req, run)
    except TimeoutError:
        raise UserError(f"--out {run.path}: another `sept-pipeline tune` is running in this folder") from None


def _clear(run: RunDir) -> None:
    """--force: metrics.json goes first, so a crash mid-way never leaves the old run looking finished."""
    (run.path / METRICS).unlink(missing_ok=True)
    shutil.rmtree(run.path / "checkpoints", ignore_errors=True)
    for folder in LOG_FOLDERS:
        shutil.rmtree(run.path / folder, ignore_errors=True)
    for name in RUN_FILES:
        (run.path / name).unlink(missing_ok=True)


def _run_locked(cfg: Config, req: TuneRequest, run: RunDir) -> dict:
    import torch

    from stages.backbones.factory import load_backbone
    from stages.data.datasets import dataset_spec, load_dataset
    from stages.data.fewshot import fewshot_cache_file, fewshot_indices
    from stages.data.splits import persist_split
    from stages.tuning.scoring import evaluate
    from stages.tuning.learners import build_learner
    from stages.tuning.run_log import RunLog
    from stages.tuning.features import eval_features_cached, evaluation_features, training_data
    from stages.tuning.trainer import sept_active, train

    if run.finished() and not req.force:  # another process finished it while we waited for the lock
        return {**run.read_metrics(), "skipped": True}
    if req.force:
        _clear(run)
    elif not req.resume and (run.path / "checkpoints" / "latest.json").is_file():
        raise UserError(f"--out {run.path}: holds an unfinished run; pass --resume to continue it or --force to "
                        f"start over")
    started = time.time()
    cache = cache_root(req.cache_dir)
    seed, shots = cfg.data.seed, cfg.data.shots

    ds = load_dataset(req.dataset, req.data_root, fold=cfg.data.fold)
    if ds.fold != cfg.data.fold:  # '' on a folded dataset means its first fold: record the fold actually run
        cfg = cfg.replace("data", fold=ds.fold)
    spec = dataset_spec(req.dataset)
    cfg = with_dataset_template(cfg, spec)  # text.dataset_template: the dataset's one template
    plan = make_plan(req.protocol, ds, req.data_root, cfg.data.base_fraction, req.targets, source_spec=spec,
                     eval_split=cfg.data.eval_split, val_fraction=cfg.data.val_fraction,
                     split_rule=cfg.data.split_rule)
    picked = fewshot_indices(plan.train_clips, shots, seed, fewshot_cache_file(cache, ds.name, shots, seed))
    train_clips = [plan.train_clips[i] for i in picked]

    backbone = load_backbone(cfg.backbone.id, cfg.backbone)
    learner = build_learner(backbone, cfg.method, cfg.text.templates, seed, cfg.train.logit_scale).to(backbone.device)
    learner.set_train_classes(plan.train_classes)
    for ev in plan.evals:  # every evaluation class list must be scorable too: fail now, not after training
        learner.set_classnames(ev.classnames)
    learner.set_classnames(plan.train_classes)

    use_sept = learner.supports_sept and sept_active(cfg.sept)
    bank, store_info, selection = None, {}, None
    if use_sept:
        from stages.tuning.neighbor_source import load_neighbor_bank

        # Only the training classes: the class boundary is drawn among them, never against a class the
        # run evaluates but does not train on.
        bank, store_info = load_neighbor_bank(
            cfg, learner, backbone, plan.train_classes, cache, dataset=req.dataset, progress=req.progress)
        selection = store_info.pop("selection")

    # Test features: cached now, or (random test crops, train-mode towers) computed after training.
    eval_feats = evaluation_features(backbone, plan.evals, cache, cfg.train, cfg.data, seed, req.progress) \
        if eval_features_cached(cfg.train) else {}
    fingerprints = {"backbone": backbone.fingerprint, "store": store_info,
                    "features": {name: _tensor_hash(f) for name, f in eval_feats.items()},
                    "train_clips": sha256_json([[str(c.path), c.label] for c in train_clips])}

    run.write_config(cfg)
    if plan.split:
        persist_split(run.path, plan.split["base"], plan.split["new"], plan.split["base_fraction"], ds.name,
                      extra={k: v for k, v in plan.split.items() if k not in ("base", "new", "base_fraction")})

    # Sinks open on first write and flush each one, so an exception here leaves complete records behind.
    run_log = RunLog(run.path, cfg.train.log_to, config=cfg.to_dict())
    train_summary = {}
    if learner.trainable:
        labels = torch.tensor([c.label for c in train_clips], dtype=torch.long)
        data, feats = training_data(backbone, train_clips, labels, cache, cfg.train, cfg.data, req.progress)
        if feats is not None:
            fingerprints["features"]["train"] = _tensor_hash(feats)
        identity = {"config": _identity_config(cfg), "protocol": req.protocol, "dataset": ds.name,
                    "train_classes": plan.train_classes, "train_clips": fingerprints["train_clips"],
                    "backbone": backbone.fingerprint, "store": store_info, "neighbor_selection": selection}
        train_summary = train(learner, data, cfg.train, cfg.sept, bank, seed=seed, run_dir=run.path,
                              identity=identity, backbone_fingerprint=backbone.fingerprint, resume=req.resume,
                              progress=req.progress, run_log=run_log)

    if not eval_feats:  # after training: the towers' BatchNorm statistics as training left them
        eval_feats = evaluation_features(backbone, plan.evals, cache, cfg.train, cfg.data, seed, req.progress)
        fingerprints["features"].update({name: _tensor_hash(f) for name, f in eval_feats.items()})
    results = {}
    for ev in plan.evals:
        results[ev.name] = evaluate(learner, ev.classnames, eval_feats[ev.name], [c.label for c in ev.clips],
                                    cfg.train.eval_batch_size)
    run_log.evaluation(train_summary.get("epochs", 0), _eval_scalars(results))
    run_log.close()
    metrics = _assemble(cfg, req, plan, results, use_sept)
    metrics.update(fold=ds.fold, folds=list(spec.folds), warnings=plan.warnings)
    metrics["method_config"]["n_ctx_used"] = getattr(learner, "n_ctx", 0)  # an init text sets its own length
    metrics["method_notes"] = learner.run_notes()  # e.g. classes scored without a learned prompt
    metrics.update(
        fingerprints=fingerprints,
        neighbor_selection=selection,
        train=train_summary,
        num_train_clips=len(train_clips),
        train_classes=plan.train_classes,
        backbone=cfg.backbone.id,
        device=str(backbone.device),
        seconds=round(time.time() - started, 3),
        torch_version=torch.__version__,
    )
    run.write_metrics(metrics)  # last: its presence marks the run finished
    return metrics


def _assemble(cfg: Config, req: TuneRequest, plan: Plan, results: dict, use_sept: bool) -> dict:
    from pipeline.config_loader import recipe_record
    from stages.evaluation.metrics import harmonic_mean

    out = {
        "method": cfg.method.name,
        "recipe": recipe_record(cfg.recipe.name),
        "protocol": req.protocol,
        "dataset": plan.dataset,
        "seed": cfg.data.seed,
        "shots": cfg.data.shots,
        "eval_split": cfg.data.eval_split,  # "val": a hyperparameter-selection run, never a reported result
        "sept": {"enabled": cfg.sept.enabled, "active": use_sept, "lam": cfg.sept.lam, "alpha": cfg.sept.alpha,
                 "beta": cfg.sept.beta, "neighbors_per_step": cfg.sept.neighbors_per_step,
                 "inter_negatives": cfg.sept.inter_negatives, "cocoop_bias": cfg.sept.cocoop_bias,
                 "boundary_filter": cfg.sept.boundary_filter},
        "method_config": asdict(cfg.method),
    }
    if req.protocol == "base2new":
        b, n = results["base"]["acc"], results["new"]["acc"]
        out.update(base_acc=b, new_acc=n, hm=harmonic_mean(b, n), base=results["base"], new=results["new"])
    elif req.protocol == "fewshot":
        out.update(results["all"])
    else:
        roles = {ev.name: ev.role for ev in plan.evals}
        targets = {k: v for k, v in results.items() if roles[k] == "target"}
        # Targets sharing data with the source are reported apart, like the source itself: never in the mean.
        overlapping = {k: v for k, v in results.items() if roles[k] == "overlap"}
        out.update(targets=targets,
                   mean_acc=sum(r["acc"] for r in targets.values()) / len(targets) if targets else None,
                   overlapping_targets=overlapping, targets_excluded=plan.targets_excluded,
                   targets_missing=plan.targets_missing, source_acc=results["source"]["acc"],
                   source=results["source"])
    return out


def _eval_scalars(results: dict) -> dict[str, float]:
    """<evaluation>_acc and <evaluation>_macro_f1 per evaluation, plus hm when there are base and new."""
    from stages.evaluation.metrics import harmonic_mean

    out = {f"{name}_{key}": r[key] for name, r in results.items() for key in ("acc", "macro_f1") if key in r}
    if "base" in results and "new" in results:
        out["hm"] = harmonic_mean(results["base"]["acc"], results["new"]["acc"])
    return out


def _identity_config(cfg: Config) -> dict:
    tree = cfg.to_dict()
    for section, key in _NOT_IDENTITY:
        tree.get(section, {}).pop(key, None)
    return tree


def _tensor_hash(t) -> str:
    from cache.fingerprint import sha256_arrays, short

    return short(sha256_arrays([("features", t.detach().cpu().numpy())]))
