"""Zero-shot classifier, the open_clip way: encode classes x templates in one batch, average, renormalise."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


@torch.no_grad()
def zeroshot_class_embeddings(backbone, classnames: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """[C, D] unit class embeddings: mean over templates of the unit frozen embedding, renormalised."""
    texts = [t.format(c) for c in classnames for t in templates]
    feats = F.normalize(backbone.encode_text(texts).float(), dim=-1)
    feats = feats.view(len(classnames), len(templates), -1).mean(dim=1)
    return F.normalize(feats, dim=-1)


@torch.no_grad()
def zeroshot_predict(audio_features: torch.Tensor, class_embeddings: torch.Tensor) -> torch.Tensor:
    """Predicted class index per clip: argmax of cosine similarity (the logit scale does not change it)."""
    a = F.normalize(audio_features.float(), dim=-1)
    return (a @ class_embeddings.float().t()).argmax(dim=-1)
