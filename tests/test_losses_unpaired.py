"""APO-zero and BCO (SPEC.md §4) against hand-computed values."""
import math

import pytest
import torch

from kto.losses import RunningMean, apo_zero_loss, bco_loss


def test_apo_zero_hand_values():
    """r = (−7) − (−10) = 3 for both; β = 0.1 → βr = 0.3, σ(0.3) = 0.574443.
    Desirable: 1 − 0.574443 = 0.425557; undesirable: 0.574443."""
    out = apo_zero_loss(torch.tensor([-7.0, -7.0]), torch.tensor([-10.0, -10.0]), torch.tensor([True, False]), beta=0.1)
    assert torch.allclose(out.losses, torch.tensor([0.425557, 0.574443]), atol=1e-6)
    assert torch.allclose(out.rewards, torch.tensor([0.3, 0.3]))


def test_apo_zero_is_half_at_the_reference():
    x = torch.tensor([-3.0, -4.0])
    assert torch.allclose(apo_zero_loss(x, x, torch.tensor([True, False])).losses, torch.tensor([0.5, 0.5]))


def test_bco_hand_values():
    """δ = 0.1, β = 0.1. Desirable r = 3: t = 0.3 − 0.1 = 0.2, −log σ(0.2) = 0.598139.
    Undesirable r = −2: t = −0.2 − 0.1 = −0.3, −log σ(0.3) = 0.554355."""
    out = bco_loss(torch.tensor([-7.0, -12.0]), torch.tensor([-10.0, -10.0]), torch.tensor([True, False]), delta=0.1, beta=0.1)
    assert torch.allclose(out.losses, torch.tensor([0.598139, 0.554355]), atol=1e-6)


def test_bco_is_log2_at_the_reference_with_delta_zero():
    x = torch.tensor([-3.0, -4.0])
    assert torch.allclose(bco_loss(x, x, torch.tensor([True, False])).losses, torch.full((2,), math.log(2)))


def test_bco_delta_gets_no_gradient():
    delta = torch.tensor(0.1, requires_grad=True)
    p = torch.tensor([-7.0], requires_grad=True)
    bco_loss(p, torch.tensor([-10.0]), torch.tensor([True]), delta=delta).losses.sum().backward()
    assert delta.grad is None and p.grad is not None


def test_running_mean_counts_every_reward():
    """Batches with reward sums 1.0 (2 rewards) then 2.0 (1 reward): mean 3/3 = 1.0."""
    m = RunningMean()
    assert m.value == 0.0
    assert m.update(torch.tensor([1.0, 2.0])) == pytest.approx(0.5)
    assert m.update(torch.tensor([2.0, 1.0])) == pytest.approx(1.0)
    assert m.value == pytest.approx(1.0)
