"""Supervised baselines (SPEC.md §4): SFT on desirable completions, and conditional SFT
(CSFT) on all completions with a control token (`<|good|>` / `<|bad|>`) after the prompt.
The control token is part of the prompt (conditioning, never scored); adding it to the
tokenizer and the data is the loop's job (`CONTROL_TOKENS`)."""
from __future__ import annotations

import torch

from .types import LossOutput

CONTROL_TOKENS = {True: "<|good|>", False: "<|bad|>"}  # desirable? -> token; generate with <|good|>


def sft_loss(mean_logps: torch.Tensor, desirable: torch.Tensor) -> LossOutput:
    """Mean token NLL of each desirable completion: −mean log πθ(y_t|x, y_<t).

    Args:
        mean_logps: (B,) per-token-mean log-probs of the completions.
        desirable: (B,) bool; must be all True (the loop keeps desirable examples only).
    Returns losses (B,), one per sequence (each sequence weighs the same, whatever its
    length), and rewards = the mean log-probs. At a uniform model over V tokens: log V.
    """
    if not bool(desirable.all()):
        raise ValueError("sft_loss got undesirable examples; SFT trains on desirable completions only")
    return LossOutput(-mean_logps, mean_logps.detach())


def csft_loss(mean_logps: torch.Tensor, desirable: torch.Tensor) -> LossOutput:
    """CSFT: the same mean token NLL, on every completion (desirable or not); the label
    enters only through the control token in the prompt. Shapes as `sft_loss`."""
    return LossOutput(-mean_logps, mean_logps.detach())
