"""Reference log-probs: a frozen model of its own, or the policy with its LoRA adapter
disabled (no second copy of the weights). Always under no-grad."""
from __future__ import annotations

import contextlib

import torch

from .logprobs import model_logps


class Reference:
    def __init__(self, model=None, policy=None):
        """Give `model` (a frozen copy or another checkpoint) or `policy` (a peft model)."""
        self.model, self.policy = model, policy
        if model is not None:
            model.eval()
            model.requires_grad_(False)

    @torch.no_grad()
    def logps(self, input_ids, attention_mask, completion_mask) -> torch.Tensor:
        if self.model is not None:
            return model_logps(self.model, input_ids, attention_mask, completion_mask)[0]
        ctx = self.policy.disable_adapter() if hasattr(self.policy, "disable_adapter") else contextlib.nullcontext()
        with ctx:
            return model_logps(self.policy, input_ids, attention_mask, completion_mask)[0]
