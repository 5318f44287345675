"""SFT and CSFT (SPEC.md §4)."""
import pytest
import torch

from kto.losses import CONTROL_TOKENS, csft_loss, sft_loss


def test_sft_is_mean_token_nll():
    """Per-token-mean log-probs −1.5 and −0.25 → losses 1.5 and 0.25 (batch mean 0.875)."""
    out = sft_loss(torch.tensor([-1.5, -0.25]), torch.tensor([True, True]))
    assert torch.allclose(out.losses, torch.tensor([1.5, 0.25]))
    assert out.losses.mean().item() == pytest.approx(0.875)


def test_sft_refuses_undesirable_examples():
    with pytest.raises(ValueError, match="desirable"):
        sft_loss(torch.tensor([-1.0, -2.0]), torch.tensor([True, False]))


def test_csft_trains_on_both_labels():
    """CSFT's label lives in the control token; the loss is the NLL for both classes."""
    out = csft_loss(torch.tensor([-1.0, -2.0]), torch.tensor([True, False]))
    assert torch.allclose(out.losses, torch.tensor([1.0, 2.0]))
    assert CONTROL_TOKENS == {True: "<|good|>", False: "<|bad|>"}
