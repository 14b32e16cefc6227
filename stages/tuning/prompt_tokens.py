"""CoOp's prompt layout in token space: "<bos> [ctx_1 .. ctx_M] {text}. <eos>", built once per text.

The CoOp way: tokenize the text behind a stand-in prefix, splice M context slots where the prefix was,
and keep the token ids, so the tower derives position ids and its pooling position from real ids; the
learner swaps its context vectors into the slots' embeddings. With an init text ("a sound of a") the
stand-in prefix IS that text and the slots keep its token ids, so before any step a prompt is token for
token the sentence "a sound of a {class}." and the tower sees exactly the frozen model's input.

The text after the prefix is tokenized in the same sentence as the frozen templates tokenize it (a word
preceded by a space), so "dog" becomes the same tokens here as in "a sound of a dog.".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from cache.errors import UserError

# Stand-in prefix for a randomly initialised context: any one ordinary word works, its tokens are replaced.
_RANDOM_INIT_PREFIX = "X"


def token_rows(backbone, texts: Sequence[str]) -> list[list[int]]:
    """Unpadded token ids (special tokens included) of each text, as the backbone tokenizes them."""
    if not texts:
        return []
    enc = backbone.tokenize(list(texts))
    ids, mask = enc["input_ids"].cpu(), enc["attention_mask"].cpu().bool()
    return [row[m].tolist() for row, m in zip(ids, mask)]


@dataclass(frozen=True)
class PromptLayout:
    """Where the context goes: `n_bos` leading special tokens, then `n_ctx` slots, then the text's tokens."""

    n_bos: int
    n_ctx: int
    slot_ids: tuple[int, ...]    # the ids kept in the slots (the init text's ids, or a repeated filler id)
    prefix: str                   # the text that stands where the context goes when tokenizing
    prefix_len: int               # its tokens, special tokens excluded
    pad_id: int
    max_len: int

    @classmethod
    def build(cls, backbone, n_ctx: int, ctx_init: str = "") -> "PromptLayout":
        """Find the special-token layout from the tokenizer itself (no assumption about the vocabulary)."""
        prefix = " ".join(ctx_init.split()) or _RANDOM_INIT_PREFIX
        specials = token_rows(backbone, [""])[0]          # e.g. [<s>, </s>]: what tokenize adds around a text
        row = token_rows(backbone, [prefix])[0]
        n_bos = 0
        while n_bos < len(specials) and n_bos < len(row) and row[n_bos] == specials[n_bos]:
            n_bos += 1
        n_eos = len(specials) - n_bos
        content = row[n_bos : len(row) - n_eos]
        if not content:
            raise UserError(f"config key method.ctx_init: {ctx_init!r} tokenizes to nothing; give words or leave it empty")
        if ctx_init.strip():
            n_ctx, slot_ids = len(content), tuple(content)
        else:
            slot_ids = (content[0],) * n_ctx
        # Padding is masked out, but RoBERTa-style towers derive position ids from the pad id: use the tower's.
        pad_id = getattr(backbone, "pad_token_id", None)
        pad_id = int(pad_id) if pad_id is not None else 0
        return cls(n_bos=n_bos, n_ctx=n_ctx, slot_ids=slot_ids, prefix=prefix, prefix_len=len(content),
                   pad_id=pad_id, max_len=int(backbone.max_text_len))

    def _prompt_ids(self, row: list[int]) -> list[int] | None:
        """The prompt's ids from the tokenized "prefix text." row, or None when it does not fit the tower."""
        ids = row[: self.n_bos] + list(self.slot_ids) + row[self.n_bos + self.prefix_len :]
        # The tokenizer may truncate silently at max_len: a full-length row might have lost its end.
        if len(ids) > self.max_len or len(row) >= self.max_len:
            return None
        return ids

    def fits(self, backbone, texts: Sequence[str]) -> list[bool]:
        """Per text: whether its prompt fits the text tower (what `tokenize` would refuse)."""
        rows = token_rows(backbone, [f"{self.prefix} {t}." for t in texts])
        return [self._prompt_ids(row) is not None for row in rows]

    def tokenize(self, backbone, texts: Sequence[str], what: str = "class name") -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask) [B, L] on the CPU for prompts of `texts`, right-padded to the longest.

        A text whose prompt would not fit the tower is a UserError naming it and the room left for the context.
        """
        rows = token_rows(backbone, [f"{self.prefix} {t}." for t in texts])
        out = []
        for text, row in zip(texts, rows):
            ids = self._prompt_ids(row)
            if ids is None:
                room = self.max_len - self.n_bos - len(row[self.n_bos + self.prefix_len :])
                raise UserError(
                    f"config key method.n_ctx: {self.n_ctx} context tokens plus the {what} {text!r} do not fit "
                    f"the text tower's {self.max_len} tokens (at most {max(room - 1, 0)} context tokens fit it)"
                )
            out.append(ids)
        length = max(len(r) for r in out)
        ids = torch.full((len(out), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(out), length), dtype=torch.long)
        for i, r in enumerate(out):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, : len(r)] = 1
        return ids, mask


def pad_to(ids: torch.Tensor, mask: torch.Tensor, length: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad [B, L] ids/mask to `length` (so class and neighbor prompts share one tower call)."""
    extra = length - ids.shape[1]
    if extra <= 0:
        return ids, mask
    return (torch.nn.functional.pad(ids, (0, extra), value=pad_id), torch.nn.functional.pad(mask, (0, extra), value=0))
