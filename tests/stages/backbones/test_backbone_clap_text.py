"""The explicit text path of the CLAP adapter against ClapModel's own forward."""
import pytest
import torch
import torch.nn.functional as F

from stages.backbones.clap.adapter import ClapBackbone

# Single-token, multi-token, hyphenated and punctuated class names, of different lengths so the
# batch is padded.
CLASS_NAMES = ["dog", "vacuum cleaner", "hi-hat", "glass breaking!", "rock 'n' roll, live (1975)", "ChainSaw"]
TEMPLATE = "a sound of a {}."


def _reference_unnormalised(clap, ids, mask):
    """ClapModel's own text path by ids: text_model -> its pooler_output -> text_projection."""
    return clap.text_projection(clap.text_model(input_ids=ids, attention_mask=mask).pooler_output)


def test_plain_embeddings_reproduce_get_text_features(tiny_backbone):
    texts = [TEMPLATE.format(c) for c in CLASS_NAMES]
    tok = tiny_backbone.tokenize(texts)
    ids, mask = tok["input_ids"], tok["attention_mask"]
    assert (mask == 0).any(), "the batch must contain padding for this test to mean anything"
    assert len(set(mask.sum(1).tolist())) > 2
    with torch.no_grad():
        ours = tiny_backbone.encode_text_from_embeddings(tiny_backbone.token_embeddings(ids), ids, mask)
        theirs = tiny_backbone.clap.get_text_features(input_ids=ids, attention_mask=mask).pooler_output
        unnormalised = _reference_unnormalised(tiny_backbone.clap, ids, mask)
    assert ours.shape == (len(texts), tiny_backbone.embed_dim) and ours.dtype == torch.float32
    torch.testing.assert_close(F.normalize(ours, dim=-1), theirs, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours, unnormalised, atol=1e-5, rtol=0)
    # Not normalised: the raw projection's norms are not all 1.
    assert not torch.allclose(ours.norm(dim=-1), torch.ones(len(texts)), atol=1e-3)


def test_each_text_is_independent_of_its_batch_padding(tiny_backbone):
    texts = [TEMPLATE.format(c) for c in CLASS_NAMES]
    batched = tiny_backbone.encode_text(texts)
    one_by_one = torch.cat([tiny_backbone.encode_text([t]) for t in texts])
    small_batches = tiny_backbone.encode_text(texts, batch_size=4)
    torch.testing.assert_close(batched, one_by_one, atol=1e-5, rtol=0)
    torch.testing.assert_close(batched, small_batches, atol=1e-5, rtol=0)


def test_gradients_reach_the_embeddings_and_only_real_tokens(tiny_backbone):
    tok = tiny_backbone.tokenize([TEMPLATE.format("dog"), TEMPLATE.format("rock 'n' roll, live (1975)")])
    ids, mask = tok["input_ids"], tok["attention_mask"]
    embeds = tiny_backbone.token_embeddings(ids).detach().clone().requires_grad_(True)
    out = tiny_backbone.encode_text_from_embeddings(embeds, ids, mask)
    out.pow(2).sum().backward()
    per_token = embeds.grad.norm(dim=-1)
    assert (per_token[mask.bool()] > 0).all()
    # Padding is masked out of attention and never pooled: its embedding cannot matter.
    assert (per_token[~mask.bool()] == 0).all() and (~mask.bool()).any()
    assert all(p.grad is None for p in tiny_backbone.parameters())


def test_context_vectors_in_place_of_words_can_be_trained(tiny_backbone):
    """CoOp's use: learnable vectors replace some word embeddings; one SGD step moves the output."""
    tok = tiny_backbone.tokenize(["X X X X dog."])
    ids, mask = tok["input_ids"], tok["attention_mask"]
    n_ctx = 4
    x_id = tiny_backbone.tokenizer.convert_tokens_to_ids("X")
    placeholder = ids[0].eq(x_id) | ids[0].eq(tiny_backbone.tokenizer.convert_tokens_to_ids("ĠX"))
    assert int(placeholder.sum()) == n_ctx
    ctx = torch.nn.Parameter(torch.randn(n_ctx, tiny_backbone.text_width, generator=torch.Generator().manual_seed(0)) * 0.02)
    opt = torch.optim.SGD([ctx], lr=1.0)
    target = torch.randn(1, tiny_backbone.embed_dim, generator=torch.Generator().manual_seed(1))

    def loss_now():
        embeds = tiny_backbone.token_embeddings(ids).detach().clone()
        embeds[0, placeholder] = ctx
        out = tiny_backbone.encode_text_from_embeddings(embeds, ids, mask)
        return 1 - F.cosine_similarity(out, target).mean()

    before = loss_now()
    opt.zero_grad()
    before.backward()
    assert ctx.grad is not None and ctx.grad.abs().sum() > 0
    opt.step()
    assert loss_now().item() < before.item()


@pytest.mark.parametrize("pooling", ["eos", "last"])
def test_other_poolings_take_the_end_token_through_the_same_head(tiny_backbone, pooling):
    other = ClapBackbone(tiny_backbone.clap, tiny_backbone.tokenizer, tiny_backbone.feature_extractor,
                         id=tiny_backbone.id, fingerprint=tiny_backbone.fingerprint, text_pooling=pooling)
    texts = [TEMPLATE.format(c) for c in CLASS_NAMES]
    tok = other.tokenize(texts)
    ids, mask = tok["input_ids"], tok["attention_mask"]
    with torch.no_grad():
        ours = other.encode_text(texts)
        hidden = other.clap.text_model(input_ids=ids, attention_mask=mask).last_hidden_state
        end = mask.sum(1) - 1  # RoBERTa appends </s> last, so both poolings pick it
        assert ids[torch.arange(len(texts)), end].eq(other.tokenizer.eos_token_id).all()
        pooler = other.clap.text_model.pooler
        reference = other.clap.text_projection(pooler.activation(pooler.dense(hidden[torch.arange(len(texts)), end])))
        first = tiny_backbone.encode_text(texts)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)
    assert not torch.allclose(ours, first, atol=1e-3)


def test_tokenize_pads_truncates_and_stays_on_device(tiny_backbone):
    tok = tiny_backbone.tokenize(["dog", "a " * 500])
    assert tok["input_ids"].shape[1] == tiny_backbone.max_text_len
    assert tok["input_ids"][1, -1].item() == tiny_backbone.tokenizer.eos_token_id
    assert tok["input_ids"][0, 0].item() == tiny_backbone.tokenizer.bos_token_id
    assert tok["input_ids"].device == tiny_backbone.device
    # A truncated text still encodes (positions fit the position table).
    assert tiny_backbone.encode_text(["a " * 500]).shape == (1, tiny_backbone.embed_dim)
    assert tiny_backbone.encode_text([]).shape == (0, tiny_backbone.embed_dim)
    with pytest.raises(TypeError):
        tiny_backbone.tokenize("dog")


def test_logit_scale_is_the_audio_to_text_scale_of_the_checkpoint(tiny_backbone):
    expected = float(tiny_backbone.clap.logit_scale_a.exp())
    assert tiny_backbone.logit_scale() == pytest.approx(expected)
    assert tiny_backbone.logit_scale() == pytest.approx(1 / 0.07, rel=1e-6)  # ClapConfig's init value


def test_attributes_come_from_the_checkpoint(tiny_backbone, tiny_clap_dir):
    import json

    config = json.loads((tiny_clap_dir / "config.json").read_text())
    assert tiny_backbone.embed_dim == config["projection_dim"] == 32
    assert tiny_backbone.text_width == config["text_config"]["hidden_size"] == 64
    assert tiny_backbone.max_text_len == config["text_config"]["max_position_embeddings"] - 2
    assert tiny_backbone.text_pooling == "first"
