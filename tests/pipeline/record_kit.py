"""Hand-made run records for the report tests: real `RunRecord`s (the writers' own class and JSON), with the
numbers a test gives and a manifest built from the default config by the run's own `build_manifest`."""
from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

from pipeline.protocols.record import (SCHEMA_VERSION, Base2NewResult, CrossResult, FewshotResult, RunRecord,
                                       Scores, build_manifest)


@functools.lru_cache(maxsize=1)
def default_config():
    from pipeline.config_loader import load_config

    return load_config()


def scores(acc: float, macro_f1: float | None = None, num_clips: int = 10) -> Scores:
    return Scores(acc=float(acc), macro_f1=float(acc if macro_f1 is None else macro_f1), per_class_acc={},
                  num_clips=num_clips)


def make_record(protocol: str = "base2new", dataset: str = "alpha", method: str = "coop", sept: bool = False,
                seed: int = 1, shots: int = 16, fold: str = "", folds: tuple[str, ...] = (), eval_split: str = "test",
                manifest: dict[str, Any] | None = None, base: float | None = None, new: float | None = None,
                acc: float | None = None, macro_f1: float | None = None, source: float = 90.0,
                targets: dict[str, float] | None = None, overlapping: dict[str, float] | None = None,
                excluded: dict[str, str] | None = None, class_overlaps: dict | None = None,
                sept_settings: dict | None = None, method_notes: dict | None = None,
                started_at: str = "2026-12-07T10:00:00.000Z", finished_at: str = "2026-12-07T10:05:00.000Z",
                train_classes: list[str] | None = None, fingerprints: dict | None = None,
                diagnostic: dict | None = None) -> RunRecord:
    cfg = (default_config().replace("data", seed=seed, shots=shots, fold=fold, eval_split=eval_split)
           .replace("sept", enabled=sept, **(sept_settings or {})).replace("method", name=method))
    facts = {"data.folds": list(folds), "precision.autocast": "off", "sept.generation_used": "g1" if sept else ""}
    built = {**build_manifest(cfg, facts), **(manifest or {})}
    if protocol == "base2new":
        result = Base2NewResult(base=scores(base), new=scores(new), base_classes=["a"], new_classes=["b"])
    elif protocol == "fewshot":
        result = FewshotResult(**dataclasses.asdict(scores(acc, macro_f1)))
    else:
        result = CrossResult(source=scores(source), targets={k: scores(v) for k, v in (targets or {}).items()},
                             overlapping_targets={k: scores(v) for k, v in (overlapping or {}).items()},
                             targets_excluded=dict(excluded or {}), targets_missing=[],
                             target_folds={k: [] for k in (targets or {})}, class_overlaps=dict(class_overlaps or {}))
    return RunRecord(
        schema_version=SCHEMA_VERSION, protocol=protocol, dataset=dataset, method=method, seed=seed, shots=shots,
        fold=fold, folds=list(folds), eval_split=eval_split, started_at=started_at, finished_at=finished_at,
        manifest=built, recipe={"name": cfg.recipe.name, "source": "test", "file_sha256": "0"},
        sept={**dataclasses.asdict(cfg.sept), "active": sept}, method_config=dataclasses.asdict(cfg.method),
        backbone=cfg.backbone.id, device="cpu", num_train_clips=0, train_classes=train_classes or [], train={},
        fingerprints=dict(fingerprints or {}), neighbor_selection=None, method_notes=dict(method_notes or {}),
        warnings=[], diagnostic=dict(diagnostic or {}),
        seconds=1.0, torch_version="test", result=result)


def write_record(root: Path, name: str, config: dict | None = None, **kw) -> Path:
    """root/name/metrics.json (and config.json when given); returns the run folder."""
    d = Path(root) / name
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(make_record(**kw).to_json())
    if config is not None:
        (d / "config.json").write_text(json.dumps(config))
    return d
