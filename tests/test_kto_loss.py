"""KTO loss against values computed by hand from SPEC.md §3.

    desirable:   λ_D · (1 − σ(β(r − z0)))
    undesirable: λ_U · (1 − σ(β(z0 − r)))
"""
import math

import pytest
import torch

from kto.losses import kto_loss, kto_z0
from kto.train import Z0


def test_both_labels_non_default_weights():
    # β = 0.1, z0 = 0.5, λ_D = 2, λ_U = 1.5
    # r = policy − ref = [1, −2, 0, 5], labels D, U, D, U
    # ex0 D: 2·(1 − σ(0.1·(1 − 0.5)))  = 2·(1 − σ(0.05))  = 2·0.48750260 = 0.97500521
    # ex1 U: 1.5·(1 − σ(0.1·(0.5 + 2))) = 1.5·(1 − σ(0.25)) = 1.5·0.43782350 = 0.65673525
    # ex2 D: 2·(1 − σ(0.1·(0 − 0.5)))  = 2·(1 − σ(−0.05)) = 2·0.51249740 = 1.02499479
    # ex3 U: 1.5·(1 − σ(0.1·(0.5 − 5))) = 1.5·(1 − σ(−0.45)) = 1.5·0.61063923 = 0.91595885
    out = kto_loss(
        policy_logps=torch.tensor([-10.0, -12.0, -8.0, -20.0], dtype=torch.float64),
        ref_logps=torch.tensor([-11.0, -10.0, -8.0, -25.0], dtype=torch.float64),
        desirable=torch.tensor([True, False, True, False]),
        z0=0.5, beta=0.1, desirable_weight=2.0, undesirable_weight=1.5,
    )
    expected = torch.tensor([0.97500521, 0.65673525, 1.02499479, 0.91595885], dtype=torch.float64)
    torch.testing.assert_close(out.losses, expected, atol=1e-7, rtol=0)
    torch.testing.assert_close(out.rewards, torch.tensor([0.1, -0.2, 0.0, 0.5], dtype=torch.float64))
    # the batch loss is the plain mean, not divided by the sum of weights
    assert out.losses.mean().item() == pytest.approx((0.97500521 + 0.65673525 + 1.02499479 + 0.91595885) / 4, abs=1e-7)


def test_policy_equals_reference_gives_one_half():
    logps = torch.tensor([-3.0, -7.0, -1.0])
    out = kto_loss(logps, logps.clone(), torch.tensor([True, False, True]), z0=0.0)
    torch.testing.assert_close(out.losses, torch.full((3,), 0.5))


@pytest.mark.parametrize("label", [True, False])
def test_single_label_batch_is_finite(label):
    policy = torch.tensor([-5.0, -300.0, 400.0], requires_grad=True)
    out = kto_loss(policy, torch.zeros(3), torch.full((3,), label), z0=2.0, beta=1.0)
    loss = out.losses.mean()
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(policy.grad).all()
    # extremes saturate: 1 − σ(±∞) → 0 or 1, never NaN
    assert set(torch.round(out.losses[1:]).tolist()) <= {0.0, 1.0}


def test_z0_carries_no_gradient_and_gradient_matches_saturation_formula():
    # SPEC §5.1: d loss / d log πθ = −λ·β·σ(βz)·σ(−βz) for desirable, +… for undesirable.
    beta, z0v = 0.5, 0.3
    policy = torch.tensor([1.2, -0.7], dtype=torch.float64, requires_grad=True)
    z0 = torch.tensor(z0v, dtype=torch.float64, requires_grad=True)
    out = kto_loss(policy, torch.zeros(2, dtype=torch.float64), torch.tensor([True, False]), z0, beta, 2.0, 3.0)
    out.losses.sum().backward()
    assert z0.grad is None  # detached inside the loss
    s = lambda x: 1 / (1 + math.exp(-x))
    zd, zu = 1.2 - z0v, z0v - (-0.7)
    expected = [-2.0 * beta * s(beta * zd) * s(-beta * zd), 3.0 * beta * s(beta * zu) * s(-beta * zu)]
    torch.testing.assert_close(policy.grad, torch.tensor(expected, dtype=torch.float64))


def test_z0_estimate_sums_counts_and_clamps_after_the_mean():
    s, c = kto_z0(torch.tensor([-1.0, -2.0, 0.5]), torch.tensor([0.0, 0.0, 0.0]))
    assert (s.item(), c.item()) == (-2.5, 3.0)
    # two processes: (−2.5, 3) and (+4, 1) -> mean 1.5/4 = 0.375; clamping each first would give 1.0
    z0, raw = Z0("batch", 0.9)(torch.tensor([-2.5 + 4.0, 3.0 + 1.0]))
    assert raw == pytest.approx(0.375) and z0.item() == pytest.approx(0.375)
    z0, raw = Z0("batch", 0.9)(torch.tensor([-2.5, 3.0]))
    assert raw == pytest.approx(-2.5 / 3) and z0.item() == 0.0
    z0, raw = Z0("zero", 0.9)(torch.tensor([5.0, 1.0]))
    assert z0.item() == 0.0
