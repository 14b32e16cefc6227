"""Verification round: the same LLM judges each candidate, and P(yes) scores it.

For every (class, candidate) the LLM is asked one yes/no question; one token is generated greedily with
the top log-probabilities of that first token, and

    P(yes) = sum of p over tokens reading 'yes' / (that + sum of p over tokens reading 'no')

(case and surrounding spaces ignored; 0 when neither appears among the top tokens). All questions of a
round go out as ONE batched call. The question names only the candidate's own class, so a class's
scores depend on that class alone. The judge used by `neighbors quality` plays no part here.
"""
from __future__ import annotations

import math
from typing import Mapping

VERIFY_PROMPT_VERSION = "verify-v1"  # bump when the question below changes: it is part of the generation key
SYSTEM = "You are an audio expert. Answer with one word: yes or no."
QUESTION = "Is '{phrase}' a sound like '{classname}'? Answer yes or no."
TOP_LOGPROBS = 20  # vLLM's default cap on returned log-probabilities


def question(phrase: str, class_name: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": QUESTION.replace("{phrase}", phrase).replace("{classname}", class_name)}]


def p_yes(top: Mapping[str, float]) -> float:
    """P(yes) from the first answer token's top log-probabilities (token text -> logprob)."""
    yes = no = 0.0
    for text, lp in top.items():
        word = str(text).strip().lower()
        if word == "yes":
            yes += math.exp(lp)
        elif word == "no":
            no += math.exp(lp)
    return yes / (yes + no) if yes + no > 0 else 0.0
