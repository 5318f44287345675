"""KTO loss (SPEC.md §3) as a pure function of tensors.

The loop computes the reference point z0 (and reduces it across processes); this
module only turns summed log-ratios, labels and z0 into per-example losses.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .types import LossOutput


def kto_loss(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    desirable: torch.Tensor,
    z0: torch.Tensor | float,
    beta: float = 0.1,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> LossOutput:
    """Per-example KTO losses.

    Args:
        policy_logps: (B,) summed log πθ(y|x) over completion tokens.
        ref_logps: (B,) summed log πref(y|x).
        desirable: (B,) bool, True for desirable examples.
        z0: scalar reference point, already clamped at 0 and detached.
        beta, desirable_weight (λ_D), undesirable_weight (λ_U): SPEC.md §3.

    Returns:
        LossOutput with losses (B,) and detached rewards β·r (B,).

    desirable:   λ_D · (1 − σ(β(r − z0)))
    undesirable: λ_U · (1 − σ(β(z0 − r)))
    """
    z0 = torch.as_tensor(z0, dtype=policy_logps.dtype, device=policy_logps.device).detach()
    r = policy_logps - ref_logps  # (B,) summed log-ratio
    sign = torch.where(desirable, 1.0, -1.0).to(r.dtype)
    weight = torch.where(
        desirable,
        torch.tensor(desirable_weight, dtype=r.dtype, device=r.device),
        torch.tensor(undesirable_weight, dtype=r.dtype, device=r.device),
    )
    # 1 − σ(t) = σ(−t); written this way it stays finite for large |t|.
    losses = weight * torch.sigmoid(-beta * sign * (r - z0))
    return LossOutput(losses=losses, rewards=(beta * r).detach())


def kto_z0(kl_policy_logps: torch.Tensor, kl_ref_logps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum and count of the mismatched-pair log-ratios of one micro-batch (no gradient).

    The caller reduces (sum, count) across processes, divides, then clamps at 0
    (SPEC.md §3: clamp after the global mean).
    """
    ratios = (kl_policy_logps - kl_ref_logps).detach()
    return ratios.sum(), torch.tensor(float(ratios.numel()), dtype=ratios.dtype, device=ratios.device)
