"""Self-consistency: pool a class's candidates from several answers and rank them by votes.

A class's answers in one round: one per example set of the prompt (prompt.py), plus `samples - 1`
sampled ones when neighbors.samples > 1, all asked in the same batched call. A phrase proposed by more of
them is more likely to name the class's sound than one a single answer wandered into. Ties are broken
by the LLM's own confidence in the phrase, when known (samples > 1): the mean log-probability of the
tokens of the line that wrote it (its best over the answers); then round-robin over the answers: how
early in its answer the phrase came, then which answer (an answer's first phrases are its surest, and
no single answer fills the list before the others have contributed theirs).

Pure Python: the worker uses it to decide whom to ask again, the parent to rank what it stores.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from stages.neighbors.cleaning import clean_answer, normalize


@dataclass
class Scored:
    phrase: str
    votes: int  # answers of the class that proposed the phrase (after cleaning)
    logprob: float  # mean token log-probability of its line, best over answers; -inf when unknown
    first: tuple[int, int]  # (position in its answer, answer index) of its earliest appearance: round-robin
    answer: int  # index of the answer it was first seen in (the one with the earliest position)


def line_logprobs(pieces: Sequence[Sequence]) -> dict[str, float]:
    """Normalised line -> mean log-probability of the tokens written on it.

    `pieces` are the answer's generated tokens as (text, logprob). A token that holds a newline closes
    the line (its log-probability counts for the line it ends, and for the next one too when it also
    starts it, as in '.\nho')."""
    out: dict[str, float] = {}
    text, lps = "", []

    def close():
        key = normalize(text)
        if key and lps:
            mean = sum(lps) / len(lps)
            out[key] = max(out.get(key, -math.inf), mean)

    for piece, lp in pieces:
        piece = str(piece)
        lps.append(float(lp))
        if "\n" in piece:
            head, _, tail = piece.partition("\n")
            text += head
            close()
            text = tail.split("\n")[-1]
            lps = [float(lp)] if text.strip() else []
        else:
            text += piece
    close()
    return out


def pool(answers: Sequence[dict], class_name: str, clean_kw: dict, already: Sequence[str] = (),
         dropped: dict | None = None) -> list[Scored]:
    """Every cleaned candidate of `answers` ({'text', 'pieces'?}), once, ranked best first.

    Phrases in `already` (kept from earlier rounds) are not candidates again. `dropped`, when given,
    counts cleaning's reasons (repeats across answers are votes, not drops)."""
    scored: dict[str, Scored] = {}
    for a_idx, ans in enumerate(answers):
        res = clean_answer(ans["text"], class_name, already=already, **clean_kw)
        kept = res.kept
        if dropped is not None:
            for _, reason in res.dropped:
                dropped[reason] = dropped.get(reason, 0) + 1
        lps = line_logprobs(ans.get("pieces") or [])
        for position, phrase in enumerate(kept):
            lp = lps.get(phrase, -math.inf)
            s = scored.get(phrase)
            if s is None:
                scored[phrase] = Scored(phrase, 1, lp, (position, a_idx), a_idx)
            else:
                s.votes += 1
                s.logprob = max(s.logprob, lp)
                if (position, a_idx) < s.first:
                    s.first, s.answer = (position, a_idx), a_idx
    return rank(scored.values())


def set_answers(result: dict) -> list[dict]:
    """A class's answers to the prompt's example sets in one round, as the worker returns them: the first
    set's (the result itself), then the other sets' ('sets'). Each carries its own seed and token count."""
    return [result] + list(result.get("sets", []))


def answers_of(result: dict) -> list[dict]:
    """All of a class's answers of one round: the example sets' (set_answers), then the sampled ones
    ('samples')."""
    return set_answers(result) + list(result.get("samples", []))


def rank(items) -> list[Scored]:
    return sorted(items, key=lambda s: (-s.votes, -s.logprob, s.first))
