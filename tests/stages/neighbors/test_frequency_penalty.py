"""The frequency penalty: the same rule on both engines (vLLM's own parameter; our transformers
LogitsProcessor), checked against a hand-worked case."""
import torch

from stages.neighbors import engines


def test_transformers_processor_subtracts_penalty_times_count_in_the_answer_only():
    proc = engines.frequency_penalty_processor(0.5, prompt_len=3)
    # row 0: prompt 7 7 7 (not counted), answer 1 2 1; row 1: prompt 1 1 1, answer 0 0 0
    ids = torch.tensor([[7, 7, 7, 1, 2, 1], [1, 1, 1, 0, 0, 0]])
    scores = torch.zeros(2, 8)
    got = proc(ids, scores.clone())
    want = torch.zeros(2, 8)
    want[0, 1], want[0, 2] = -1.0, -0.5  # token 1 twice, token 2 once
    want[1, 0] = -1.5  # token 0 three times; the prompt's 1s cost nothing
    assert torch.equal(got, want)
    # nothing written yet: unchanged
    assert torch.equal(proc(ids[:, :3], scores.clone()), scores)


def test_vllm_request_carries_the_frequency_penalty():
    s = engines.Sampling(temperature=0.0, top_p=1.0, max_tokens=16, seed=1, frequency_penalty=0.7)
    params = engines.VLLMEngine._params(None, s)  # builds vLLM's SamplingParams, no engine needed
    assert params.frequency_penalty == 0.7 and params.repetition_penalty == 1.0 and params.temperature == 0.0
    assert s.record()["frequency_penalty"] == 0.7  # stored with every phrase as provenance
