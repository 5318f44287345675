"""Unpaired losses other than KTO (SPEC.md §4): APO-zero and BCO.

Both take summed log-probs of single examples with a binary label; r = log πθ − log πref.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .types import LossOutput


def apo_zero_loss(policy_logps, ref_logps, desirable, beta: float = 0.1) -> LossOutput:
    """APO-zero (unpaired): desirable 1 − σ(βr), undesirable σ(βr).

    Args: policy_logps, ref_logps (B,) summed; desirable (B,) bool.
    Returns losses (B,), rewards β·r (B,). At policy = reference every loss is 0.5.
    """
    r = policy_logps - ref_logps
    losses = torch.where(desirable, 1 - torch.sigmoid(beta * r), torch.sigmoid(beta * r))
    return LossOutput(losses, (beta * r).detach())


def bco_loss(policy_logps, ref_logps, desirable, delta: torch.Tensor | float = 0.0, beta: float = 0.1) -> LossOutput:
    """BCO: desirable −log σ(βr − δ), undesirable −log σ(−(βr − δ)).

    Args: policy_logps, ref_logps (B,) summed; desirable (B,) bool; delta: the detached
    running mean of past rewards β·r, kept by the loop (`RunningMean`).
    At policy = reference with δ = 0 every loss is log 2.
    """
    delta = torch.as_tensor(delta, dtype=policy_logps.dtype, device=policy_logps.device).detach()
    r = policy_logps - ref_logps
    t = beta * r - delta
    losses = torch.where(desirable, -F.logsigmoid(t), -F.logsigmoid(-t))
    return LossOutput(losses, (beta * r).detach())


class RunningMean:
    """BCO's δ: the mean of every reward seen so far (all processes), updated with the
    current micro-batch before it is used, as in the BCO paper's reward shift."""

    def __init__(self):
        self.total, self.count = 0.0, 0.0

    def update(self, sum_count: torch.Tensor) -> float:
        """sum_count: (2,) reward sum and count, already summed over processes."""
        self.total += float(sum_count[0])
        self.count += float(sum_count[1])
        return self.total / self.count if self.count else 0.0

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else 0.0
