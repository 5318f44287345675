"""Per-sequence log-probabilities: the one place where the label shift and masks live."""
from __future__ import annotations

import torch


def token_logps(logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of each next token, zero outside the completion, and the mask.

    logits: (B, T, V) from a causal LM; position t predicts token t+1.
    input_ids, completion_mask: (B, T). Returns (token_logps (B, T−1), mask (B, T−1) bool).
    """
    logits = logits[:, :-1].float()
    labels = input_ids[:, 1:]
    mask = completion_mask[:, 1:]
    picked = torch.gather(logits, 2, labels.unsqueeze(-1)).squeeze(-1)
    token_logps = picked - torch.logsumexp(logits, dim=-1)
    return torch.where(mask, token_logps, torch.zeros_like(token_logps)), mask


def sequence_logps(logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-prob of the completion tokens, and how many there are.

    logits: (B, T, V) from a causal LM; position t predicts token t+1.
    input_ids, completion_mask: (B, T). Prompt and padding positions are masked out.
    Returns (logps (B,), n_tokens (B,)).
    """
    token_lp, mask = token_logps(logits, input_ids, completion_mask)
    return token_lp.sum(-1), mask.sum(-1)


def model_logps(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor):
    """Run the model and score the completions. Returns (logps (B,), n_tokens (B,))."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    return sequence_logps(logits, input_ids, completion_mask)
