"""ranking.rank_answers, the one ranking of stage one, on hand-worked answers (no engine: the worker runs it
on real vLLM answers in tests/pipeline/commands/test_generate_neighbors.py)."""
from stages.neighbors import ranking, voting

CLEAN = {"max_words": 6, "max_chars": 60, "same_script": True}


def test_candidates_carry_the_seed_of_the_answer_that_proposed_them_first():
    # Three example sets (seeds 11, 22, 33) and two sampled answers sharing the samples' seed 99.
    result = {"text": "woof\nbarking dog", "seed": 11,
              "sets": [{"text": "yelp\nbarking dog", "seed": 22}, {"text": "howl", "seed": 33}],
              "samples": [{"text": "growl\nwoof"}, {"text": "snarl"}], "samples_seed": 99}
    dropped = {}
    got = ranking.rank_answers(result, "dog bark", 1, CLEAN, earlier=["howl"], votes=True, dropped=dropped)
    # Votes first (barking dog 2, woof 2), then round-robin: position in its answer, then which answer.
    assert [(c.phrase, c.seed, c.votes, c.round) for c in got] == [
        ("woof", 11, 2, 1), ("barking dog", 11, 2, 1), ("yelp", 22, 1, 1), ("growl", 99, 1, 1), ("snarl", 99, 1, 1)]
    assert dropped == {"duplicate": 1}  # 'howl' was kept in an earlier round: not a candidate again
    # The same order as voting.pool's, which it wraps: one ranking, not a second one.
    assert [c.phrase for c in got] == [s.phrase for s in voting.pool(voting.answers_of(result), "dog bark", CLEAN,
                                                                     ["howl"])]


def test_without_votes_counted_the_vote_field_stays_empty_and_json_round_trips():
    got = ranking.rank_answers({"text": "woof\nyelp", "seed": 5}, "dog", 0, CLEAN)
    assert [(c.phrase, c.seed, c.votes) for c in got] == [("woof", 5, None), ("yelp", 5, None)]
    assert [ranking.Candidate.from_json(c.to_json()) for c in got] == got


def test_verification_drops_below_the_threshold_and_records_the_scores_kept():
    cands = [ranking.Candidate("woof", 1, 0), ranking.Candidate("yelp", 1, 0), ranking.Candidate("meow", 1, 0)]
    dropped = {}
    kept = ranking.drop_unverified(cands, {"woof": 0.8, "yelp": 0.5, "meow": 0.49}, 0.5, dropped)
    assert [(c.phrase, c.verify_score) for c in kept] == [("woof", 0.8), ("yelp", 0.5)]
    assert dropped == {"verification": 1}
