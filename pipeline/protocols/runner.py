"""One `tune` run as a run object with named phases: setup -> train -> evaluate -> record.

    setup     dataset, plan, few-shot draw, backbone, learner, neighbor bank, evaluation features; checks that
              need no training come first (classes without clips, a context that does not fit the tower,
              neighbors missing from the store), so a bad run stops in seconds with one line, before any epoch
    train     the training data (cached features, or clips encoded per batch: random crops, train-mode towers;
              stages/tuning/features.py) and the trainer
    evaluate  each evaluation set of the plan, scored (test features that depend on the trained towers or on
              the seed's crops are computed here, after training)
    record    the run record (pipeline/protocols/record.py) written as metrics.json
The run directory holds the resolved config, the train log, checkpoints, the final prompt and, written last,
metrics.json: its presence means the run finished, and a finished run is skipped unless --force.
`evaluate` (zero-shot) goes through the same object: it is a run of a method that trains nothing.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from cache.atomic import atomic_write_json
from cache.errors import UserError
from cache.fingerprint import cache_root, sha256_json
from cache.lock import file_lock
from pipeline.config_loader import Config, non_identity_keys, with_dataset_template
from pipeline.protocols.plans import make_plan
from pipeline.protocols.record import SCHEMA_VERSION, RunRecord, Scores, build_manifest, utc_now
from pipeline.protocols.table import check_method_fits, protocol_info
from pipeline.runs import METRICS, RunDir
from stages.data.config import ALL_FOLDS

# Keys of the resolved config that do not change what a run computes (marked on their fields): a resume may
# differ in them.
_NOT_IDENTITY = {tuple(key.split(".", 1)) for key in non_identity_keys()}
LOG_FOLDERS = ("tensorboard", "wandb")  # stages/tuning/run_log.py's sinks
STARTED_FILE = "started.json"           # when the run first started: a resumed run keeps that time
RUN_FILES = ("train_log.jsonl", "prompt.safetensors", "base_new_split.json", "config.toml", "config.json",
             "tower_buffers.safetensors", STARTED_FILE, "diagnostic.npz")


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


@dataclass
class TuneOutcome:
    record: RunRecord
    out: Path
    skipped: bool = False     # finished before this call: read back, not run again

    def to_dict(self) -> dict:
        """What `tune --json`, `evaluate --json` and a sweep cell print of one run: its record, where it is,
        whether it was skipped."""
        return {**self.record.to_dict(), "out": str(self.out), "skipped": self.skipped}


def run_tune(cfg: Config, req: TuneRequest) -> TuneOutcome:
    check_method_fits(cfg.method, req.protocol, cfg.sept.enabled and cfg.sept.lam > 0)  # what the method cannot do
    if cfg.data.fold == ALL_FOLDS:
        raise UserError("data.fold 'all': one run covers one fold; run every fold with `sept-pipeline tune --fold all` "
                        "(one run folder per fold) or a sweep's fold axis")
    if req.resume and req.force:
        raise UserError("--resume and --force: choose one (continue the checkpoint, or start over)")
    run = RunDir(req.out)
    if run.finished() and not req.force:
        return TuneOutcome(_finished_record(run), run.path, skipped=True)
    created = not run.path.exists()
    run.ensure()
    try:
        with file_lock(run.path / ".lock", timeout=0.5):
            if run.finished() and not req.force:  # another process finished it while we waited for the lock
                return TuneOutcome(_finished_record(run), run.path, skipped=True)
            return TuneOutcome(TuneRun(cfg, req, run).execute(), run.path)
    except TimeoutError:
        raise UserError(f"--out {run.path}: another `sept-pipeline tune` is running in this folder") from None
    except BaseException:
        if created:  # a run refused before it wrote anything leaves no folder behind
            _remove_if_empty(run.path)
        raise


def _remove_if_empty(folder: Path) -> None:
    if {p.name for p in folder.iterdir()} <= {".lock"}:
        (folder / ".lock").unlink(missing_ok=True)
        folder.rmdir()


def _finished_record(run: RunDir) -> RunRecord:
    """The record of a finished run; one written before the record existed is named, with what to do."""
    from pipeline.protocols.record import RecordError

    try:
        return run.read_record()
    except RecordError as e:
        raise UserError(f"--out {run.path}: holds a finished run whose {e}; pass --force to redo it, or choose "
                        f"another --out") from None


def _clear(run: RunDir) -> None:
    """--force: metrics.json goes first, so a crash mid-way never leaves the old run looking finished."""
    (run.path / METRICS).unlink(missing_ok=True)
    shutil.rmtree(run.path / "checkpoints", ignore_errors=True)
    for folder in LOG_FOLDERS:
        shutil.rmtree(run.path / folder, ignore_errors=True)
    for name in RUN_FILES:
        (run.path / name).unlink(missing_ok=True)


class TuneRun:
    """One run of `tune` (or zero-shot `evaluate`), phase by phase; `execute` runs them in order."""

    def __init__(self, cfg: Config, req: TuneRequest, run: RunDir):
        self.cfg, self.req, self.run = cfg, req, run
        self.protocol = protocol_info(req.protocol)
        self.cache = cache_root(req.cache_dir)
        self.train_summary: dict = {}
        self.scores: dict[str, Scores] = {}

    def execute(self) -> RunRecord:
        if self.req.force:
            _clear(self.run)
        elif not self.req.resume and (self.run.path / "checkpoints" / "latest.json").is_file():
            raise UserError(f"--out {self.run.path}: holds an unfinished run; pass --resume to continue it or "
                            f"--force to start over")
        self.clock = time.time()
        self.started_at = self._started_at()
        self.setup()
        self.train()
        self.evaluate()
        return self.record()

    def _started_at(self) -> str:
        """Now, or for a resumed run the time its first attempt started (recorded beside it)."""
        try:
            return json.loads((self.run.path / STARTED_FILE).read_text())["started_at"]
        except (OSError, ValueError, KeyError, TypeError):
            return utc_now()

    # -- phase 1 --
    def setup(self) -> None:
        from stages.backbones.factory import load_backbone
        from stages.data.datasets import dataset_spec, load_dataset
        from stages.data.fewshot import fewshot_cache_file, fewshot_indices
        from stages.data.splits import persist_split
        from stages.tuning.features import eval_features_cached, evaluation_features
        from stages.tuning.learners import build_learner
        from stages.tuning.trainer import sept_active

        cfg, req = self.cfg, self.req
        seed, shots = cfg.data.seed, cfg.data.shots
        ds = load_dataset(req.dataset, req.data_root, fold=cfg.data.fold)
        if ds.fold != cfg.data.fold:  # '' on a folded dataset means its first fold: record the fold actually run
            cfg = self.cfg = cfg.replace("data", fold=ds.fold)
        self.ds, self.spec = ds, dataset_spec(req.dataset)
        # text.dataset_template: the dataset's one template; the run's cfg (so its manifest) holds the templates used
        cfg = self.cfg = with_dataset_template(cfg, self.spec)
        plan = self.plan = make_plan(req.protocol, ds, req.data_root, cfg.data.base_fraction, req.targets,
                                     source_spec=self.spec, eval_split=cfg.data.eval_split,
                                     val_fraction=cfg.data.val_fraction, split_rule=cfg.data.split_rule)
        picked = fewshot_indices(plan.train_clips, shots, seed, fewshot_cache_file(self.cache, ds.name, shots, seed))
        self.train_clips = [plan.train_clips[i] for i in picked]

        backbone = self.backbone = load_backbone(cfg.backbone.id, cfg.backbone)
        learner = self.learner = build_learner(backbone, cfg.method, cfg.text.templates, seed,
                                               cfg.train.logit_scale).to(backbone.device)
        learner.set_train_classes(plan.train_classes)
        for ev in plan.evals:  # every evaluation class list must be scorable too: fail now, not after training
            learner.set_classnames(ev.classnames)
        learner.set_classnames(plan.train_classes)

        self.use_sept = learner.supports_sept and sept_active(cfg.sept)
        self.bank, self.store_info, self.selection = None, {}, None
        if self.use_sept:
            from stages.tuning.neighbor_source import load_neighbor_bank

            # Only the training classes: the class boundary is drawn among them, never against a class the
            # run evaluates but does not train on.
            self.bank, self.store_info = load_neighbor_bank(cfg, learner, backbone, plan.train_classes, self.cache,
                                                            dataset=req.dataset, progress=req.progress)
            self.selection = self.store_info.pop("selection")

        # Test features: cached now, or (random test crops, train-mode towers) computed after training.
        self.eval_feats = evaluation_features(backbone, plan.evals, self.cache, cfg.train, cfg.data, seed,
                                              req.progress) if eval_features_cached(cfg.train) else {}
        self.fingerprints = {"backbone": backbone.fingerprint, "store": self.store_info,
                             "features": {name: _tensor_hash(f) for name, f in self.eval_feats.items()},
                             "train_clips": sha256_json([[str(c.path), c.label] for c in self.train_clips])}

        self.run.write_config(cfg)
        atomic_write_json(self.run.path / STARTED_FILE, {"started_at": self.started_at})
        if plan.split:
            persist_split(self.run.path, plan.split["base"], plan.split["new"], plan.split["base_fraction"], ds.name,
                          extra={k: v for k, v in plan.split.items() if k not in ("base", "new", "base_fraction")})

    # -- phase 2 --
    def train(self) -> None:
        import torch

        from stages.tuning.features import training_data
        from stages.tuning.run_log import RunLog
        from stages.tuning.trainer import train

        cfg, req, backbone, train_clips = self.cfg, self.req, self.backbone, self.train_clips
        # Sinks open on first write and flush each one, so an exception here leaves complete records behind.
        self.run_log = RunLog(self.run.path, cfg.train.log_to, config=cfg.to_dict())
        if not self.learner.trainable:
            return
        labels = torch.tensor([c.label for c in train_clips], dtype=torch.long)
        data, feats = training_data(backbone, train_clips, labels, self.cache, cfg.train, cfg.data, req.progress)
        if feats is not None:
            self.fingerprints["features"]["train"] = _tensor_hash(feats)
        identity = {"config": _identity_config(cfg), "protocol": req.protocol, "dataset": self.ds.name,
                    "train_classes": self.plan.train_classes, "train_clips": self.fingerprints["train_clips"],
                    "backbone": backbone.fingerprint, "store": self.store_info, "neighbor_selection": self.selection}
        self.train_summary = train(self.learner, data, cfg.train, cfg.sept, self.bank, seed=cfg.data.seed,
                                   run_dir=self.run.path, identity=identity, backbone_fingerprint=backbone.fingerprint,
                                   resume=req.resume, progress=req.progress, run_log=self.run_log)

    # -- phase 3 --
    def evaluate(self) -> None:
        from stages.evaluation.metrics import harmonic_mean
        from stages.tuning.features import evaluation_features
        from stages.tuning.scoring import evaluate

        if not self.eval_feats:  # after training: the towers' BatchNorm statistics as training left them
            cfg = self.cfg
            self.eval_feats = evaluation_features(self.backbone, self.plan.evals, self.cache, cfg.train, cfg.data,
                                                  cfg.data.seed, self.req.progress)
            self.fingerprints["features"].update({name: _tensor_hash(f) for name, f in self.eval_feats.items()})
        for ev in self.plan.evals:
            scores = evaluate(self.learner, ev.classnames, self.eval_feats[ev.name], [c.label for c in ev.clips],
                              self.cfg.train.eval_batch_size)
            self.scores[ev.name] = Scores(**scores)
        scalars = {f"{name}_{key}": getattr(s, key) for name, s in self.scores.items() for key in ("acc", "macro_f1")}
        if "base" in self.scores and "new" in self.scores:
            scalars["hm"] = harmonic_mean(self.scores["base"].acc, self.scores["new"].acc)
        self.run_log.evaluation(self.train_summary.get("epochs", 0), scalars)
        self.run_log.close()

    # -- phase 4 --
    def record(self) -> RunRecord:
        import torch

        from pipeline.config_loader import recipe_record
        from stages.tuning.trainer import amp_settings

        cfg, learner = self.cfg, self.learner
        autocast, _ = amp_settings(self.backbone.device, cfg.train.amp)
        facts = {"data.folds": list(self.spec.folds),
                 "precision.autocast": str(autocast).replace("torch.", "") if autocast else "off",
                 "sept.generation_used": self.store_info.get("generation_key", "") if self.use_sept else ""}
        record = RunRecord(
            schema_version=SCHEMA_VERSION, protocol=self.protocol.name, dataset=self.plan.dataset,
            method=cfg.method.name, seed=cfg.data.seed, shots=cfg.data.shots, fold=self.ds.fold,
            folds=list(self.spec.folds), eval_split=cfg.data.eval_split, started_at=self.started_at,
            finished_at=utc_now(), manifest=build_manifest(cfg, facts), recipe=recipe_record(cfg.recipe.name),
            sept={**asdict(cfg.sept), "active": self.use_sept},
            # an init text sets its own context length
            method_config={**asdict(cfg.method), "n_ctx_used": getattr(learner, "n_ctx", 0)},
            backbone=cfg.backbone.id, device=str(self.backbone.device), num_train_clips=len(self.train_clips),
            train_classes=list(self.plan.train_classes), train=self.train_summary, fingerprints=self.fingerprints,
            neighbor_selection=self.selection, method_notes=learner.run_notes(),  # e.g. classes scored zero-shot
            warnings=list(self.plan.warnings), diagnostic=self.diagnostic(), seconds=round(time.time() - self.clock, 3),
            torch_version=torch.__version__,
            result=self.protocol.result_type().from_evaluations(self.plan, self.scores))
        self.run.write_record(record)  # last: its presence marks the run finished
        return record


    def diagnostic(self) -> dict:
        """Write the diagnostic's arrays (stages/tuning/diagnostic_arrays.py) while the learner is in memory, for
        a learner that neighbors can go through; what was written, or why nothing was. Never changes training:
        it runs after evaluation and only reads."""
        from cache.errors import UserError
        from stages.tuning.diagnostic_arrays import DIAGNOSTIC_FILE, diagnostic_arrays, write_arrays

        if not self.learner.supports_sept:
            return {"skipped": f"{self.cfg.method.name} has no prompt that neighbors go through"}
        try:
            from cache.store import NeighborStore
        except ImportError as e:  # a machine without the store's packages can still train without SEPT
            return {"skipped": f"the neighbor store cannot be read here ({e})"}
        store = NeighborStore.in_cache(self.cache)
        if not store.root.is_dir():
            return {"skipped": f"no neighbor store at {store.root}"}
        split = self.plan.split
        classes = list(split["base"]) + list(split["new"]) if split else sorted(self.plan.train_classes)
        if self.use_sept:
            gkey = self.store_info["generation_key"]
        else:
            from stages.tuning.neighbor_source import resolve_generation

            try:  # as a SEPT run of this config would: a machine that cannot say is no reason to fail the run
                gkey = resolve_generation(self.cfg, store, self.plan.train_classes, self.backbone.fingerprint,
                                          self.req.dataset, self.backbone.id, self.cache).key
            except (UserError, OSError, ImportError) as e:
                return {"skipped": f"no store generation for this config ({e})"}
        try:
            arrays = diagnostic_arrays(self.learner, store, gkey, classes, self.cfg.text.templates,
                                       self.backbone.fingerprint, len(split["base"]) if split else -1)
        except UserError as e:
            return {"skipped": str(e)}
        if isinstance(arrays, str):
            return {"skipped": arrays}
        write_arrays(self.run.path / DIAGNOSTIC_FILE, arrays)
        out = {"file": DIAGNOSTIC_FILE, "generation_key": gkey, "classes": len(arrays["classes"]),
               "neighbors": len(arrays["neighbors"]), "omitted": arrays["omitted"].tolist()}
        if self.use_sept:
            out["neighbors_near_evaluated_names"] = self._near_evaluated_names(arrays)
        return out

    def _near_evaluated_names(self, arrays) -> dict:
        """Stored neighbors of the training classes that (nearly) equal a class name evaluated but not trained on."""
        from stages.tuning.diagnostic_arrays import near_evaluated_names
        from stages.zeroshot import zeroshot_class_embeddings

        trained = set(self.plan.train_classes)
        names = list(dict.fromkeys(c for ev in self.plan.evals for c in ev.classnames if c not in trained))
        vectors = (zeroshot_class_embeddings(self.backbone, names, self.cfg.text.templates).double().cpu().numpy()
                   if names else None)
        return near_evaluated_names(arrays, sorted(trained), names, vectors, self.cfg.neighbors.near_duplicate_cos)


def _identity_config(cfg: Config) -> dict:
    tree = cfg.to_dict()
    for section, key in _NOT_IDENTITY:
        tree.get(section, {}).pop(key, None)
    return tree


def _tensor_hash(t) -> str:
    from cache.fingerprint import sha256_arrays, short

    return short(sha256_arrays([("features", t.detach().cpu().numpy())]))
