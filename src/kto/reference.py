"""Reference log-probs: a frozen model of its own, or the policy with its LoRA adapter
disabled (no second copy of the weights). Always under no-grad."""
from __future__ import annotations

import contextlib

import torch

from .logprobs import model_logps, token_logps


class Reference:
    def __init__(self, model=None, policy=None):
        """Give `model` (a frozen copy or another checkpoint) or `policy` (a peft model)."""
        self.model, self.policy = model, policy
        if model is not None:
            model.eval()
            model.requires_grad_(False)

    def _context(self):
        if self.model is not None:
            return contextlib.nullcontext()
        return self.policy.disable_adapter() if hasattr(self.policy, "disable_adapter") else contextlib.nullcontext()

    @torch.no_grad()
    def logps(self, input_ids, attention_mask, completion_mask) -> torch.Tensor:
        """Summed completion log-probs (B,)."""
        with self._context():
            return model_logps((self.model if self.model is not None else self.policy), input_ids, attention_mask, completion_mask)[0]

    @torch.no_grad()
    def token_logps(self, input_ids, attention_mask, completion_mask) -> torch.Tensor:
        """Per-token log-probs (B, T−1), zero outside the completion (offline PPO's π_old)."""
        with self._context():
            model = (self.model if self.model is not None else self.policy)
            logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
            return token_logps(logits, input_ids, completion_mask)[0]
