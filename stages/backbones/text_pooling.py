"""Which token's hidden state stands for a whole text: the pooling position, made explicit.

open_clip names the choice (`text_pool_type`); transformers hides it inside each model's pooler.
Prompt tuning swaps token embeddings while keeping the token ids, so the position is always computed
from the ids and the attention mask, never from the (learned) embeddings:

- 'first': position 0, the <s>/[CLS] token. CLAP's own (RoBERTa + BERT-style pooler on token 0).
- 'eos':   the first occurrence of the end-of-sequence id in each row (</s> for RoBERTa; CLIP's pooling).
- 'last':  the last attended (non-padding) position of each row, whatever its id.

For CLAP's RoBERTa tokenizer every text ends in </s>, so 'eos' and 'last' pick the same token;
they differ for tokenizers that add no end token or when a text contains the end token itself.
Neither is what CLAP was trained with: they exist for other towers and for ablations.
"""
from __future__ import annotations

import torch

POOLINGS = ("first", "eos", "last")


def pooling_positions(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, pooling: str, eos_token_id: int | None
) -> torch.Tensor:
    """LongTensor[B]: the index of the pooled token in each row of `input_ids` [B, L]."""
    batch = input_ids.shape[0]
    if pooling == "first":
        return torch.zeros(batch, dtype=torch.long, device=input_ids.device)
    if pooling == "last":
        # Index of the last 1 in the mask; right padding and left padding both work.
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        return (attention_mask.to(torch.long) * positions).argmax(dim=1)
    if pooling == "eos":
        if eos_token_id is None:
            raise ValueError("text pooling 'eos' needs a tokenizer with an end-of-sequence token")
        is_eos = input_ids.eq(eos_token_id)
        if not bool(is_eos.any(dim=1).all()):
            raise ValueError(f"text pooling 'eos': some rows contain no end token (id {eos_token_id})")
        # argmax returns the first maximum: the first end token of each row.
        return is_eos.to(torch.long).argmax(dim=1)
    raise ValueError(f"text pooling {pooling!r} is not one of {', '.join(POOLINGS)}")


def gather_positions(hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """hidden [B, L, W], positions [B] -> [B, W] (differentiable w.r.t. `hidden`)."""
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), positions]
