"""Reference log-probs: a frozen model of its own, or the policy with its LoRA adapter
disabled (no second copy of the weights). Always under no-grad."""
from __future__ import annotations

import contextlib

import torch

from .logprobs import model_logps, token_logps


class Reference:
    def __init__(self, model=None, policy=None, autocast=contextlib.nullcontext):
        """Give `model` (a frozen copy or another checkpoint) or `policy` (a peft model).

        autocast: a context-manager factory the reference forward runs under. The loop
        passes the accelerator's, so that under bf16 mixed precision the reference sees the
        same arithmetic as the policy (accelerate autocasts only the prepared policy): a
        frozen copy then gives exactly r = 0 at step 1, not bf16-vs-fp32 rounding noise.
        """
        self.model, self.policy, self.autocast = model, policy, autocast
        if model is not None:
            model.eval()
            model.requires_grad_(False)

    def _context(self):
        stack = contextlib.ExitStack()
        stack.enter_context(self.autocast())
        if self.model is None and hasattr(self.policy, "disable_adapter"):
            stack.enter_context(self.policy.disable_adapter())
        return stack

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
