"""Per-sequence log-probs (SPEC.md §1): the label shift and masks, by hand; and the fast
path (logits only from the first scored position) held equal to the plain one."""
import pytest
import torch

from kto.data.batching import collate
from kto.data.records import Example
from kto.data.tokenize import Encoder
from kto.logprobs import first_scored_position, model_logps, sequence_logps
from kto.models import tiny_model, tiny_tokenizer


def test_sequence_logps_by_hand():
    """T = 4, vocabulary 3, uniform logits except one: the completion is tokens 2 and 3,
    predicted from positions 1 and 2; position 0's and 3's logits are never used."""
    logits = torch.zeros(1, 4, 3)
    logits[0, 1] = torch.tensor([0.0, 0.0, 2.0])  # predicts token 2 = id 2
    ids = torch.tensor([[1, 0, 2, 1]])
    mask = torch.tensor([[False, False, True, True]])
    lp, n = sequence_logps(logits, ids, mask)
    expect = (2.0 - torch.log(torch.tensor(2.0 + torch.e ** 2))) + torch.log(torch.tensor(1 / 3))
    assert n.item() == 2 and lp.item() == pytest.approx(expect.item(), rel=1e-6)


def test_first_scored_position():
    mask = torch.tensor([[0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 1, 1]], dtype=torch.bool)
    assert first_scored_position(mask) == 2
    assert first_scored_position(torch.zeros(2, 3, dtype=torch.bool)) == 0


def _plain(model, b):
    logits = model(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False).logits
    return sequence_logps(logits, b.input_ids, b.completion_mask)


def _batch():
    tok = tiny_tokenizer()
    # prompts of different lengths, completions of different lengths: padding on the right
    exs = [Example("Q" * (8 + 5 * i), " answer" * (1 + i % 3), i % 2 == 0) for i in range(5)]
    return collate(Encoder(tok)(exs, 96, 64), tok.pad_token_id, 96)


def _grads(model):
    return [p.grad.clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("lora", [False, True])
def test_fast_path_equals_plain_values_and_gradients(lora):
    model = tiny_model(len(tiny_tokenizer()), seed=3)
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    b = _batch()
    assert first_scored_position(b.completion_mask) > 5  # the fast path really skips positions
    fast, n_fast = model_logps(model, b.input_ids, b.attention_mask, b.completion_mask)
    fast.sum().backward()
    g_fast = _grads(model)
    model.zero_grad()
    plain, n_plain = _plain(model, b)
    plain.sum().backward()
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    assert torch.equal(n_fast, n_plain)
    for a, c in zip(g_fast, _grads(model), strict=True):
        torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-6)


class _NoKeep(torch.nn.Module):
    """A causal LM whose forward does not take logits_to_keep."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, attention_mask, use_cache=False):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask, use_cache=use_cache)


class _IgnoresKeep(_NoKeep):
    """One that takes logits_to_keep in **kwargs and ignores it (full logits come back)."""

    def forward(self, input_ids, attention_mask, use_cache=False, **kwargs):
        return super().forward(input_ids, attention_mask, use_cache)


@pytest.mark.parametrize("wrapper", [_NoKeep, _IgnoresKeep])
def test_models_without_logits_to_keep_give_the_plain_values(wrapper):
    inner = tiny_model(len(tiny_tokenizer()), seed=3)
    b = _batch()
    lp, _ = model_logps(wrapper(inner), b.input_ids, b.attention_mask, b.completion_mask)
    torch.testing.assert_close(lp, _plain(inner, b)[0])


def test_fast_path_with_left_padding_and_an_empty_completion():
    """Row 0 is left-padded; row 1 has no completion token at all (logp 0, n 0)."""
    model = tiny_model(len(tiny_tokenizer()), seed=3)
    ids = torch.randint(4, 200, (2, 12))
    attn = torch.ones(2, 12, dtype=torch.long)
    attn[0, :3] = 0
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[0, 8:] = True
    b = type("B", (), {"input_ids": ids, "attention_mask": attn, "completion_mask": mask})
    lp, n = model_logps(model, ids, attn, mask)
    plain, n_plain = _plain(model, b)
    torch.testing.assert_close(lp, plain)
    assert n.tolist() == n_plain.tolist() == [4, 0] and lp[1].item() == 0.0
