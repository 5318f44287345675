"""Containers shared by every loss."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LossOutput:
    """What a loss function returns.

    losses: per-example losses; the loop takes their plain mean. Shape (B,) for unpaired
        losses, (P,) for paired losses (one per pair).
    rewards: detached implied rewards for logging, β·r for losses with a reference.
        Shape (B,) for unpaired losses; (2P,) for paired losses, chosen rows first then
        rejected rows (the layout of `collate_pairs`). Losses without a reference report
        the score they compare instead (documented per loss).
    """

    losses: torch.Tensor
    rewards: torch.Tensor
