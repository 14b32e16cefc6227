"""Score a learner on one labelled set of cached audio features with a given list of class names."""
from __future__ import annotations

from typing import Sequence

import torch

from stages.evaluation.metrics import classification_metrics


@torch.no_grad()
def predict(learner, features: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Predicted class index per clip for the learner's current class names (batched; CoCoOp is chunked inside)."""
    learner.eval()
    device = learner.backbone.device
    preds = []
    for start in range(0, features.shape[0], batch_size):
        logits = learner.predict_logits(features[start : start + batch_size].to(device))
        preds.append(logits.argmax(dim=-1).cpu())
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)


def evaluate(learner, classnames: Sequence[str], features: torch.Tensor, labels: Sequence[int],
             batch_size: int = 64) -> dict:
    """acc, macro_f1, per_class_acc, num_clips of `learner` with `classnames` (labels index into them)."""
    learner.set_classnames(classnames)
    preds = predict(learner, features, batch_size)
    return classification_metrics(list(labels), preds.tolist(), list(classnames))
