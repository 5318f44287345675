"""Containers shared by every loss."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LossOutput:
    """What a loss function returns.

    losses: (B,) per-example losses; the loop takes their plain mean.
    rewards: (B,) detached implied rewards β·r for logging (NaN where not defined).
    """

    losses: torch.Tensor
    rewards: torch.Tensor
