"""Build a human-aware loss (HALO, SPEC.md §2) from its parts and train with it.

A HALO scores example (x, y) by a value function v of its normalised log-ratio measured
from a reference point, signed by a_{x,y} ∈ {−1, +1}:

    z = β·(r_θ(x, y) − z_ref),   r_θ = log πθ(y|x) − log πref(y|x)
    loss(x, y) = w_y · (c_y − a_{x,y} · v(z))

w_y = (λ_D, λ_U) class weights and c_y a per-class constant (the C_D of the definition:
it moves the value, never the gradient). The reference point z_ref is one of
  - "kl":   the batch KL estimate z0 (computed and detached by the loop, as for KTO);
  - "pair": the other completion of a preference pair (with gradient, as in DPO);
            each pair is one example, y = chosen, a = +1, z = β·(r_w − r_l);
  - a number: a constant, in log-ratio units.

    kto = HALO(logistic, "kl", offset=(1.0, 0.0))       # equals kto_loss
    dpo = HALO(log_sigmoid, "pair")                     # equals dpo_loss
    kt  = HALO(kahneman_tversky(lam=2.25, alpha=0.88), "kl")
    LOSSES["kt-power"] = kt.spec()                      # then TrainConfig(loss="kt-power")
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .types import LossOutput


def logistic(z: torch.Tensor) -> torch.Tensor:
    """v(z) = σ(z): KTO's value, concave for z > 0 and saturating both ways."""
    return torch.sigmoid(z)


def log_sigmoid(z: torch.Tensor) -> torch.Tensor:
    """v(z) = log σ(z): DPO's value."""
    return F.logsigmoid(z)


def kahneman_tversky(lam: float = 2.25, alpha: float = 0.88, eps: float = 1e-2) -> Callable[[torch.Tensor], torch.Tensor]:
    """The Kahneman–Tversky value v(z; λ, α) = z^α for z ≥ 0, −λ(−z)^α for z < 0 (SPEC.md §2).
    Defaults λ = 2.25, α = 0.88 are Tversky and Kahneman's (1992) estimates.

    Its slope α·|z|^(α−1) is infinite at z = 0 when α < 1, and z = 0 is exactly where
    training starts (policy = reference gives r = z0 = 0): the first gradient is NaN/inf.
    That is why the paper swaps in a logistic. The guard eps > 0 shifts the curve,
    v(z) = sign(z)·((|z| + eps)^α − eps^α) (times λ below 0): continuous, v(0) = 0, the
    same shape away from 0 (values move by less than λ·eps^α), slope at most λ·α·eps^(α−1).
    eps = 0 gives the unguarded function.
    """
    if not (0 < alpha <= 1 and lam > 0 and eps >= 0):
        raise ValueError("kahneman_tversky needs 0 < alpha <= 1, lam > 0, eps >= 0")

    def v(z: torch.Tensor) -> torch.Tensor:
        # Both branches see non-negative inputs (a negative base would put NaN in the
        # gradient of the branch torch.where discards).
        gain, loss = z.clamp(min=0), (-z).clamp(min=0)
        return torch.where(z >= 0, (gain + eps) ** alpha - eps ** alpha, -lam * ((loss + eps) ** alpha - eps ** alpha))

    v.__name__ = f"kahneman_tversky(lam={lam}, alpha={alpha}, eps={eps})"
    return v


@dataclass
class HALO:
    """A trainable loss from (value function, reference point, sign). See the module docstring.

    value: elementwise, non-decreasing v(z).
    reference: "kl", "pair", or a float.
    beta: the normaliser l(y) = β on the log-ratio.
    weights: (λ_D, λ_U). offset: (c_D, c_U), per-class constants.
    """

    value: Callable[[torch.Tensor], torch.Tensor]
    reference: str | float = "kl"
    beta: float = 0.1
    weights: tuple[float, float] = (1.0, 1.0)
    offset: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self):
        if not (self.reference in ("kl", "pair") or isinstance(self.reference, (int, float))):
            raise ValueError(f"reference must be 'kl', 'pair' or a number, got {self.reference!r}")

    def _per_class(self, pair: tuple[float, float], desirable: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return torch.where(desirable, torch.tensor(pair[0], dtype=like.dtype, device=like.device),
                           torch.tensor(pair[1], dtype=like.dtype, device=like.device))

    def unpaired(self, policy_logps, ref_logps, desirable, z0=None, sign=None) -> LossOutput:
        """policy_logps, ref_logps: (B,) summed; desirable: (B,) bool; z0: scalar (reference
        "kl"); sign: (B,) of ±1, by default +1 for desirable and −1 for undesirable.
        Returns losses (B,), rewards β·r (B,)."""
        r = policy_logps - ref_logps
        if self.reference == "kl":
            if z0 is None:
                raise ValueError("a HALO with reference 'kl' needs z0 from the loop")
            ref_point = torch.as_tensor(z0, dtype=r.dtype, device=r.device).detach()
        elif self.reference == "pair":
            raise ValueError("a HALO with reference 'pair' takes paired log-probs: call .paired(...)")
        else:
            ref_point = torch.tensor(float(self.reference), dtype=r.dtype, device=r.device)
        a = torch.where(desirable, 1.0, -1.0).to(r.dtype) if sign is None else sign.to(r.dtype)
        z = self.beta * (r - ref_point)
        losses = self._per_class(self.weights, desirable, r) * (self._per_class(self.offset, desirable, r) - a * self.value(z))
        return LossOutput(losses, (self.beta * r).detach())

    def paired(self, chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps) -> LossOutput:
        """Four (P,) summed log-probs. Each pair is one desirable example whose reference
        point is its rejected partner: loss = λ_D·(c_D − v(β(r_w − r_l))). Rewards (2P,)."""
        r_w, r_l = chosen_logps - ref_chosen_logps, rejected_logps - ref_rejected_logps
        losses = self.weights[0] * (self.offset[0] - self.value(self.beta * (r_w - r_l)))
        return LossOutput(losses, (self.beta * torch.cat([r_w, r_l])).detach())

    def __call__(self, *args, **kw) -> LossOutput:
        return self.paired(*args, **kw) if self.reference == "pair" else self.unpaired(*args, **kw)

    def spec(self):
        """A registry entry, so that `LOSSES[name] = halo.spec()` makes it selectable by name."""
        from . import LossSpec

        return LossSpec(self, paired=self.reference == "pair", needs_kl=self.reference == "kl")
