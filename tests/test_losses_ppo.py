"""Offline PPO-Clip (SPEC.md §4): advantages, the first loss, clipping, the value head."""
import pytest
import torch

from kto.losses import ValueHead, ppo_loss
from kto.losses.ppo import gae


def test_gae_hand_values():
    """One row, tokens at positions 1 and 2 in the completion, V = 0, reward +1 at position 2.
    γ = 0.99, λ = 0.95: A_2 = 1; A_1 = 0 + γλ·A_2 = 0.9405; position 0 is prompt → 0."""
    mask = torch.tensor([[False, True, True]])
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    adv = gae(torch.zeros(1, 3), rewards, mask, gamma=0.99, lam=0.95)
    assert torch.allclose(adv, torch.tensor([[0.0, 0.9405, 1.0]]))


def test_first_loss_at_the_reference_with_a_zero_value_head():
    """Policy = reference (ratio 1), V = 0, the example above: advantages (0.9405, 1),
    whitened over the two tokens to (−1, +1); policy loss mean(−Â·1) = 0.
    Value loss ½·mean(A²) = ½·(0.9405² + 1²)/2 = ½·1.884540/2 = 0.471135; × 0.01 = 0.00471135.
    KL penalty ½(log 1)² = 0. Total 0.00471135."""
    lp = torch.tensor([[0.0, -2.0, -3.0]])
    mask = torch.tensor([[False, True, True]])
    out = ppo_loss(lp, lp, torch.zeros(1, 3), mask, torch.tensor([True]))
    assert out.losses.item() == pytest.approx(0.00471135, abs=1e-6)
    assert out.rewards.item() == 0.0


def test_ratio_is_clipped_at_four():
    """Two one-token sequences: desirable (A = +1) and undesirable (A = −1); whitened they stay
    ±1. The desirable token has ratio 5 > 4 = 1/0.25: the clipped term −Â·4 wins the max, so
    its log-prob gets no gradient (nothing more to gain). The undesirable token, ratio 1:
    loss −(−1)·ρ = ρ, gradient dρ/dlog π = ρ = 1, divided by B = 2 in the mean → 0.5."""
    ref = torch.tensor([[0.0, -2.0], [0.0, -2.0]])
    pol = (ref + torch.tensor([[0.0, torch.log(torch.tensor(5.0))], [0.0, 0.0]])).requires_grad_()
    mask = torch.tensor([[False, True], [False, True]])
    out = ppo_loss(pol, ref, torch.zeros(2, 2), mask, torch.tensor([True, False]), value_coef=0.0, kl_coef=0.0)
    out.losses.mean().backward()
    assert pol.grad[0, 1].item() == 0.0
    assert pol.grad[1, 1].item() == pytest.approx(0.5)


def test_kl_penalty_is_half_squared_log_ratio():
    """One token, log ratio 0.5, A whitened alone → 0 (mean removed): loss = 0.1·½·0.25 = 0.0125
    (value coefficient 0)."""
    ref = torch.tensor([[0.0, -2.0]])
    out = ppo_loss(ref + torch.tensor([[0.0, 0.5]]), ref, torch.zeros(1, 2), torch.tensor([[False, True]]),
                   torch.tensor([True]), value_coef=0.0, kl_coef=0.1)
    assert out.losses.item() == pytest.approx(0.0125)


def test_value_head_starts_at_zero_and_learns():
    head = ValueHead(8)
    h = torch.randn(2, 3, 8)
    assert torch.equal(head(h), torch.zeros(2, 3))
    mask = torch.ones(2, 3, dtype=torch.bool)
    lp = torch.zeros(2, 3)
    ppo_loss(lp, lp, head(h), mask, torch.tensor([True, False])).losses.mean().backward()
    assert head.linear.weight.grad.abs().sum() > 0
