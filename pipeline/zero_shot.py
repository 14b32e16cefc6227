"""Zero-shot evaluation of a dataset split: the first end-to-end path (no training, no neighbors)."""
from __future__ import annotations

import time
from pathlib import Path

from cache.errors import UserError
from cache.fingerprint import cache_root
from pipeline.config_loader import Config
from pipeline.runs import RunDir


def evaluate_zeroshot(cfg: Config, dataset: str, data_root: Path, out: Path, split: str = "test",
                      cache_dir: Path | None = None, progress: bool = True) -> dict:
    """Score the frozen model's template-averaged class embeddings on one split; write out/metrics.json."""
    # Heavy imports here, not at module import: `sept-pipeline --help` stays instant.
    import torch

    from stages.audio_features import clip_features
    from stages.backbones.factory import load_backbone
    from pipeline.config_loader import with_dataset_template
    from stages.data.datasets import dataset_spec, load_dataset
    from stages.evaluation.metrics import classification_metrics
    from stages.zeroshot import zeroshot_class_embeddings, zeroshot_predict

    if split not in ("test", "train"):
        raise UserError(f"--split {split!r}: expected 'test' or 'train'")
    run = RunDir(out)
    started = time.time()
    ds = load_dataset(dataset, data_root, fold=cfg.data.fold)
    cfg = with_dataset_template(cfg, dataset_spec(dataset))
    clips = ds.test if split == "test" else ds.train
    if not clips:
        raise UserError(f"dataset {dataset} at {ds.root}: the {split} split has no clips (expected at least one)")
    cache = cache_root(cache_dir)
    backbone = load_backbone(cfg.backbone.id, cfg.backbone)
    feats = clip_features(backbone, clips, cache, progress=progress, channels=cfg.data.channels)
    class_emb = zeroshot_class_embeddings(backbone, ds.classnames, cfg.text.templates)
    preds = zeroshot_predict(feats, class_emb).tolist()
    labels = [c.label for c in clips]
    metrics = classification_metrics(labels, preds, ds.classnames)
    metrics.update(
        method="zeroshot",
        dataset=ds.name,
        split=split,
        fold=getattr(ds, "fold", cfg.data.fold),
        backbone=cfg.backbone.id,
        backbone_fingerprint=backbone.fingerprint,
        templates=list(cfg.text.templates),
        num_classes=len(ds.classnames),
        seconds=round(time.time() - started, 3),
        torch_version=torch.__version__,
    )
    # Config first, metrics last: metrics.json present <=> the run finished.
    run.write_config(cfg)
    run.write_metrics(metrics)
    return metrics
