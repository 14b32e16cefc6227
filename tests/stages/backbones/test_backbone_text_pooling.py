"""Pooling positions, checked against hand-worked cases."""
import pytest
import torch

from stages.backbones.text_pooling import gather_positions, pooling_positions

PAD, EOS = 1, 2
# Row 0: right padded; row 1: full; row 2: left padded and ending in a token that is not </s>.
IDS = torch.tensor([[0, 7, 8, EOS, PAD, PAD],
                    [0, 7, 8, 9, 10, EOS],
                    [PAD, PAD, 0, 7, EOS, 9]])
MASK = torch.tensor([[1, 1, 1, 1, 0, 0],
                     [1, 1, 1, 1, 1, 1],
                     [0, 0, 1, 1, 1, 1]])


def test_first_is_always_position_zero():
    assert pooling_positions(IDS, MASK, "first", EOS).tolist() == [0, 0, 0]


def test_eos_is_the_first_end_token_of_each_row():
    assert pooling_positions(IDS, MASK, "eos", EOS).tolist() == [3, 5, 4]


def test_last_is_the_last_attended_position_whatever_its_id():
    # Row 2 ends with a non-eos token (id 9): 'last' picks it, 'eos' does not.
    assert pooling_positions(IDS, MASK, "last", EOS).tolist() == [3, 5, 5]


def test_eos_pooling_without_an_end_token_is_refused():
    with pytest.raises(ValueError, match="no end token"):
        pooling_positions(torch.tensor([[0, 7, 8]]), torch.ones(1, 3), "eos", EOS)
    with pytest.raises(ValueError, match="end-of-sequence"):
        pooling_positions(IDS, MASK, "eos", None)
    with pytest.raises(ValueError, match="not one of"):
        pooling_positions(IDS, MASK, "mean", EOS)


def test_gather_picks_one_row_each_and_passes_gradients():
    hidden = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2).requires_grad_()
    picked = gather_positions(hidden, torch.tensor([2, 0]))
    assert picked.tolist() == [[4.0, 5.0], [6.0, 7.0]]
    picked.sum().backward()
    assert hidden.grad[0, 2].tolist() == [1.0, 1.0] and hidden.grad[1, 0].tolist() == [1.0, 1.0]
    assert hidden.grad.sum().item() == 4.0
