"""Self-consistency pooling and the verification score, on hand-worked answers (no engine: the engine
paths run in test_vllm_scoring.py)."""
import math

import pytest

from stages.neighbors import verification, voting

CLEAN = {"max_words": 6, "max_chars": 60, "same_script": True}


def test_line_logprobs_are_the_mean_of_each_lines_tokens():
    pieces = [("bark", -0.5), ("ing dog", -1.5), ("\n", -0.1), ("wo", -2.0), ("of", -4.0)]
    got = voting.line_logprobs(pieces)
    assert got["barking dog"] == pytest.approx((-0.5 - 1.5 - 0.1) / 3)  # the newline token closes its line
    assert got["woof"] == pytest.approx(-3.0)


def test_a_token_that_ends_one_line_and_starts_the_next():
    got = voting.line_logprobs([("yelp", -1.0), (".\nho", -2.0), ("wl", -4.0)])
    assert got == {"yelp": pytest.approx(-1.5), "howl": pytest.approx(-3.0)}


def test_pool_ranks_by_votes_then_logprob_then_first_appearance():
    answers = [
        {"text": "woof\nbarking dog\ngrowl", "pieces": [("woof", -3.0), ("\n", 0.0), ("barking dog", -1.0),
                                                     ("\n", 0.0), ("growl", -0.2)]},
        {"text": "barking dog\nyelp\nwoof", "pieces": []},
        {"text": "howl\nbarking dog\ndog bark\nyelp", "pieces": [("howl", -0.1)]},
    ]
    ranked = voting.pool(answers, "dog bark", CLEAN)
    assert [(s.phrase, s.votes) for s in ranked] == [
        ("barking dog", 3), ("woof", 2), ("yelp", 2), ("howl", 1), ("growl", 1)]
    # woof (-1.5 best line) before yelp (no log-probability known); howl (-0.05) before growl (-0.1)
    assert ranked[1].logprob == pytest.approx(-1.5) and ranked[2].logprob == -math.inf
    assert ranked[3].logprob == pytest.approx(-0.1) and ranked[3].answer == 2


def test_pool_without_logprobs_ranks_by_votes_then_round_robin_over_the_answers():
    # Three example sets' greedy answers (no log-probabilities asked): after the shared phrase, each
    # answer's first phrase, then each answer's second, ... (position in its answer, then which answer).
    answers = [{"text": "woof\nbarking dog\ngrowl"}, {"text": "yelp\nbarking dog\nhowl\nsnarl"},
               {"text": "canine bark"}]
    ranked = voting.pool(answers, "dog bark", CLEAN)
    assert [s.phrase for s in ranked] == ["barking dog", "woof", "yelp", "canine bark", "growl", "howl", "snarl"]
    assert [s.first for s in ranked][:4] == [(1, 0), (0, 0), (0, 1), (0, 2)]
    assert ranked[5].answer == 1
    # a phrase seen early in a later answer takes that earlier position (and answer)
    again = voting.pool([{"text": "a\nb\nc\nhiss"}, {"text": "hiss"}], "x", CLEAN)
    assert [(s.phrase, s.votes, s.first, s.answer) for s in again][0] == ("hiss", 2, (0, 1), 1)


def test_answers_of_a_worker_result_in_order():
    r = {"text": "a", "sets": [{"text": "b"}, {"text": "c"}], "samples": [{"text": "d"}]}
    assert [a["text"] for a in voting.answers_of(r)] == ["a", "b", "c", "d"]
    assert voting.answers_of({"text": "a"}) == [{"text": "a"}]


def test_pool_skips_earlier_candidates_and_counts_cleaning_drops():
    dropped = {}
    ranked = voting.pool([{"text": "woof\ndog bark\nbark dog"}], "dog bark", CLEAN, already=["woof"],
                         dropped=dropped)
    assert ranked == []
    assert dropped == {"duplicate": 1, "class name": 1, "class name reordered": 1}


def test_p_yes_from_first_token_logprobs():
    top = {"Yes": math.log(0.6), " yes": math.log(0.1), "No": math.log(0.2), "Maybe": math.log(0.1)}
    assert verification.p_yes(top) == pytest.approx(0.7 / 0.9)
    assert verification.p_yes({"No": -0.1}) == 0.0
    assert verification.p_yes({"The": -0.1}) == 0.0  # neither answer among the top tokens
    q = verification.question("barking dog", "dog")
    assert "barking dog" in q[-1]["content"] and "'dog'" in q[-1]["content"]
