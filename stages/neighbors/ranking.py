"""A class's answers of one round -> its new candidates, best first: the one ranking of stage one.

    cands = rank_answers(result, "dog", round_index=0, clean_kw=..., earlier=["dog barking"], votes=False)
    cands = drop_unverified(cands, {"woof": 0.7}, threshold=0.5)      # only with a verification round

The worker (worker.py) calls it once per class and round, right after the engine answered, and returns
the candidates; the parent (generation.py) only filters them by embeddings and stores them. A class's
candidates are made from its own answers alone: its name, the answers to its own requests (each with its
own seed), the phrases it kept from earlier rounds and the cleaning rules.

Pure Python (cleaning.py, voting.py): no engine, no torch.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

from stages.neighbors import voting


@dataclass
class Candidate:
    phrase: str
    seed: int  # the seed of the request whose answer proposed it first
    round: int
    votes: int | None = None  # answers that proposed it (samples > 1), else None
    verify_score: float | None = None  # P(yes) of the verification round, when there was one

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping) -> "Candidate":
        return cls(str(d["phrase"]), int(d["seed"]), int(d["round"]), d.get("votes"), d.get("verify_score"))


def rank_answers(result: dict, class_name: str, round_index: int, clean_kw: dict, earlier: Sequence[str] = (),
                 votes: bool = False, dropped: dict | None = None) -> list[Candidate]:
    """The new candidates of `class_name` in this round, best first.

    result: the class's answers as the worker collects them (voting.answers_of: the example sets' answers,
    each with its own seed, then the sampled ones, which share `samples_seed`). The answers are text-cleaned
    and pooled by voting.pool (votes, then log-probability, then round-robin); phrases in `earlier` (kept in
    earlier rounds) are not candidates again. votes: record each candidate's vote count (samples > 1).
    dropped: counts cleaning's reasons.
    """
    answers = voting.answers_of(result)
    sets = voting.set_answers(result)
    seeds = [a["seed"] for a in sets] + [result.get("samples_seed", result["seed"])] * (len(answers) - len(sets))
    return [Candidate(x.phrase, seeds[x.answer], round_index, x.votes if votes else None)
            for x in voting.pool(answers, class_name, clean_kw, list(earlier), dropped)]


def drop_unverified(candidates: Sequence[Candidate], scores: Mapping[str, float], threshold: float,
                    dropped: dict | None = None) -> list[Candidate]:
    """The candidates with their verification score P(yes) (verification.py) at or above `threshold`, in order."""
    kept = []
    for c in candidates:
        c.verify_score = scores.get(c.phrase)
        if c.verify_score is not None and c.verify_score < threshold:
            if dropped is not None:
                dropped["verification"] = dropped.get("verification", 0) + 1
            continue
        kept.append(c)
    return kept
