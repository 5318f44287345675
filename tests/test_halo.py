"""The HALO builder (SPEC.md §2): KTO and DPO built from parts equal their direct versions
(values and gradients, random inputs); the Kahneman–Tversky power value blows up at z0 and
its guard does not; a built HALO trains."""
import math

import pytest
import torch

from kto.config import TrainConfig
from kto.data.records import Example
from kto.losses import LOSSES, HALO, dpo_loss, kahneman_tversky, kto_loss, log_sigmoid, logistic


def _random(n, seed):
    g = torch.Generator().manual_seed(seed)
    pol = (-50 + 20 * torch.randn(n, generator=g, dtype=torch.float64)).requires_grad_()
    ref = -50 + 20 * torch.randn(n, generator=g, dtype=torch.float64)
    desirable = torch.rand(n, generator=g) < 0.5
    return pol, ref, desirable


@pytest.mark.parametrize("seed", range(5))
def test_kto_as_a_halo_equals_kto_loss(seed):
    pol, ref, desirable = _random(64, seed)
    beta, w_d, w_u, z0 = 0.1 * (seed + 1), 1.0 + seed, 1.5, 0.37 * seed
    direct = kto_loss(pol, ref, desirable, z0, beta, w_d, w_u)
    (g_direct,) = torch.autograd.grad(direct.losses.sum(), pol)
    built = HALO(logistic, "kl", beta=beta, weights=(w_d, w_u), offset=(1.0, 0.0))(pol, ref, desirable, z0=z0)
    (g_built,) = torch.autograd.grad(built.losses.sum(), pol)
    assert torch.allclose(built.losses, direct.losses, atol=1e-12)
    assert torch.allclose(g_built, g_direct, atol=1e-12)
    assert torch.allclose(built.rewards, direct.rewards)


def test_kto_zero_is_a_halo_with_a_constant_reference_point():
    pol, ref, desirable = _random(16, 7)
    built = HALO(logistic, 0.0, offset=(1.0, 0.0))(pol, ref, desirable)
    assert torch.allclose(built.losses, kto_loss(pol, ref, desirable, 0.0).losses)


@pytest.mark.parametrize("seed", range(5))
def test_dpo_as_a_halo_equals_dpo_loss(seed):
    g = torch.Generator().manual_seed(seed)
    c, r = ((-50 + 20 * torch.randn(32, generator=g, dtype=torch.float64)).requires_grad_() for _ in range(2))
    rc, rr = (-50 + 20 * torch.randn(32, generator=g, dtype=torch.float64) for _ in range(2))
    beta = 0.05 * (seed + 1)
    direct = dpo_loss(c, r, rc, rr, beta=beta)
    built = HALO(log_sigmoid, "pair", beta=beta)(c, r, rc, rr)
    assert torch.allclose(built.losses, direct.losses, atol=1e-12)
    g1 = torch.autograd.grad(direct.losses.sum(), (c, r))
    g2 = torch.autograd.grad(built.losses.sum(), (c, r))
    assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(g1, g2))


def test_kahneman_tversky_values():
    """λ = 2, α = 0.5, no guard: v(4) = 4^0.5 = 2; v(−4) = −2·4^0.5 = −4; v(0) = 0."""
    v = kahneman_tversky(lam=2.0, alpha=0.5, eps=0.0)
    assert torch.allclose(v(torch.tensor([4.0, -4.0, 0.0])), torch.tensor([2.0, -4.0, 0.0]))


def test_kahneman_tversky_gradient_blows_up_at_the_reference_point_and_the_guard_holds():
    """Slope α·|z|^(α−1): at z = 1e-8, α = 0.5 it is 0.5·1e4 = 5000 and at z = 0 it is not finite.
    Policy = reference puts every example at z = 0, where training starts. With eps = 1e-2 the
    slope for z ≥ 0 is at most α·eps^(α−1) = 0.5·10 = 5, and values move by less than
    λ·eps^α = 2·0.1 = 0.2 (v(9) = 9.01^0.5 − 0.1 = 2.9017 against 3)."""
    raw, guarded = kahneman_tversky(2.0, 0.5, eps=0.0), kahneman_tversky(2.0, 0.5, eps=1e-2)
    z = torch.tensor([0.0, 1e-8], requires_grad=True)
    (g,) = torch.autograd.grad(raw(z).sum(), z)
    assert not torch.isfinite(g[0])
    assert g[1].item() == pytest.approx(5000, rel=1e-3)
    (g,) = torch.autograd.grad(guarded(z).sum(), z)
    assert torch.isfinite(g).all() and g.abs().max() <= 5.0 + 1e-6
    far = torch.tensor([9.0, -9.0])
    assert torch.allclose(guarded(far), raw(far), atol=0.2)
    assert guarded(far)[0].item() == pytest.approx(9.01 ** 0.5 - 0.1, abs=1e-5)


def test_unguarded_kt_halo_gives_a_non_finite_first_gradient():
    """The whole loss at policy = reference (r = z0 = 0): the unguarded gradient is NaN/inf."""
    pol = torch.tensor([-10.0, -12.0], requires_grad=True)
    ref, d = pol.detach().clone(), torch.tensor([True, False])
    for eps, finite in ((0.0, False), (1e-2, True)):
        loss = HALO(kahneman_tversky(eps=eps), "kl")(pol, ref, d, z0=0.0).losses.sum()
        (g,) = torch.autograd.grad(loss, pol)
        assert bool(torch.isfinite(g).all()) is finite


def test_halo_rejects_a_bad_reference():
    with pytest.raises(ValueError):
        HALO(logistic, "mean")
    with pytest.raises(ValueError, match="z0"):
        HALO(logistic, "kl")(torch.zeros(2), torch.zeros(2), torch.tensor([True, False]))


def test_a_built_halo_trains_by_name(tmp_path, monkeypatch):
    """Register the guarded Kahneman–Tversky HALO and train the tiny model with it."""
    import json

    from kto.train import train

    monkeypatch.setitem(LOSSES, "kt-power", HALO(kahneman_tversky(lam=2.25, alpha=0.88), "kl", beta=0.5).spec())
    examples = [Example(f"Q{i}: say something.", f" answer {i} " + "ok" * (i % 5 + 1), i % 2 == 0, f"row {i}")
                for i in range(24)]
    cfg = TrainConfig(loss="kt-power", model="tiny", output=str(tmp_path / "run"), max_steps=3, batch_size=4,
                      max_length=64, max_prompt_length=32, lr=1e-2, warmup_ratio=0.0, eval_fraction=0.0, progress=False)
    out = train(cfg, examples)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["loss"] == pytest.approx(0.0)  # v(0) = 0 at policy = reference, offsets 0
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"]) for r in rows)
    assert rows[0]["grad_norm"] > 0 and rows[-1]["loss"] != rows[0]["loss"]
