"""Paired losses (SPEC.md §4) against values computed by hand from their formulas."""
import math

import pytest
import torch

from kto.losses import cdpo_loss, dpo_loss, ipo_loss, orpo_loss, simpo_loss, slic_loss
from kto.losses.preference import log_odds

T = lambda *v: torch.tensor(v, dtype=torch.float64)  # noqa: E731


def test_dpo_hand_values():
    """Pair 1: r_w = −10 − (−11) = 1, r_l = −12 − (−11) = −1, h = 0.1·(1 − (−1)) = 0.2,
    −log σ(0.2) = log(1 + e^−0.2) = log 1.818731 = 0.598139.
    Pair 2: r_w = −3 − (−1) = −2, r_l = −1 − (−3) = 2, h = 0.1·(−2 − 2) = −0.4,
    −log σ(−0.4) = log(1 + e^0.4) = log 2.491825 = 0.913015."""
    out = dpo_loss(T(-10, -3), T(-12, -1), T(-11, -1), T(-11, -3), beta=0.1)
    assert torch.allclose(out.losses, T(0.598139, 0.913015), atol=1e-6)
    assert torch.allclose(out.rewards, T(0.1, -0.2, -0.1, 0.2))  # β·r, chosen rows then rejected rows


def test_dpo_is_log2_at_the_reference():
    """Policy = reference: h = 0, −log σ(0) = log 2."""
    x = T(-5.0, -7.0, -9.0)
    assert torch.allclose(dpo_loss(x, x + 1, x, x + 1).losses, torch.full((3,), math.log(2), dtype=torch.float64))


def test_cdpo_hand_value():
    """h = 0.2 as in the DPO test; ε = 0.2:
    0.8·log(1 + e^−0.2) + 0.2·log(1 + e^0.2) = 0.8·0.598139 + 0.2·0.798139 = 0.638139."""
    out = cdpo_loss(T(-10), T(-12), T(-11), T(-11), beta=0.1, label_smoothing=0.2)
    assert out.losses.item() == pytest.approx(0.638139, abs=1e-6)
    assert cdpo_loss(T(-10), T(-12), T(-11), T(-11), label_smoothing=0.0).losses.item() == pytest.approx(0.598139, abs=1e-6)


def test_ipo_hand_value():
    """Per-token means: r̄_w = −1.0 − (−1.5) = 0.5, r̄_l = −2.0 − (−1.75) = −0.25; τ = 0.1:
    (0.5 + 0.25 − 1/(2·0.1))² = (0.75 − 5)² = 18.0625. At the reference: (0 − 5)² = 25."""
    assert ipo_loss(T(-1.0), T(-2.0), T(-1.5), T(-1.75), tau=0.1).losses.item() == pytest.approx(18.0625)
    assert ipo_loss(T(-1.0), T(-2.0), T(-1.0), T(-2.0), tau=0.1).losses.item() == pytest.approx(25.0)


def test_slic_hand_values():
    """δ = 1, λ = 0.1. Pair 1: logp_w = −10, logp_l = −12: hinge max(0, 1 + 10 − 12) = 0,
    NLL term 0.1·10 = 1 → 1.0. Pair 2: logp_w = −10, logp_l = −9: hinge 1 + 10 − 9 = 2,
    plus 1 → 3.0."""
    out = slic_loss(T(-10, -10), T(-12, -9), delta=1.0, lam=0.1)
    assert torch.allclose(out.losses, T(1.0, 3.0))


def test_simpo_hand_values():
    """β = 2, γ = 0.5. Pair 1: means −1.0 vs −1.5: 2·0.5 − 0.5 = 0.5, −log σ(0.5) = 0.474077.
    Pair 2: means −2 vs −1: 2·(−1) − 0.5 = −2.5, −log σ(−2.5) = 2.578890."""
    out = simpo_loss(T(-1.0, -2.0), T(-1.5, -1.0), beta=2.0, gamma=0.5)
    assert torch.allclose(out.losses, T(0.474077, 2.578890), atol=1e-6)


def test_orpo_hand_value():
    """Means m_w = −0.5, m_l = −1.0; log odds m − log(1 − e^m):
    −0.5 − log(1 − 0.606531) = −0.5 + 0.932752 = 0.432752;
    −1.0 − log(1 − 0.367879) = −1.0 + 0.458675 = −0.541325.
    NLL(y_w) = 0.5; λ = 0.25: 0.5 − 0.25·log σ(0.974077) = 0.5 + 0.25·0.320300 = 0.580075."""
    assert log_odds(T(-0.5)).item() == pytest.approx(0.432752, abs=1e-6)
    assert orpo_loss(T(-0.5), T(-1.0), lam=0.25).losses.item() == pytest.approx(0.580075, abs=1e-6)


def test_orpo_log_odds_finite_for_tiny_probabilities():
    """A long completion has a per-token-mean log-prob far below 0: the odds stay finite."""
    lo = log_odds(T(-30.0, -1e-9))
    assert torch.isfinite(lo).all()


@pytest.mark.parametrize("fn", [dpo_loss, cdpo_loss])
def test_dpo_family_gradient_pushes_chosen_up(fn):
    """The gradient descends toward a larger chosen and a smaller rejected log-prob."""
    c, r = T(-10.0).requires_grad_(), T(-10.0).requires_grad_()
    fn(c, r, T(-10.0), T(-10.0)).losses.sum().backward()
    assert c.grad.item() < 0 < r.grad.item()
