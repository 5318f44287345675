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


def first_scored_position(completion_mask: torch.Tensor) -> int:
    """The earliest position whose logits predict a completion token (in any row): the
    position before the earliest completion token. Logits before it are never used."""
    cols = completion_mask.any(0).nonzero()
    return max(int(cols[0]) - 1, 0) if len(cols) else 0


def model_logps(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor):
    """Run the model and score the completions. Returns (logps (B,), n_tokens (B,)).

    Fast path: the vocabulary projection and the log-softmax run only from the first
    position that predicts a completion token (transformers' `logits_to_keep`), not over
    the prompt, where they are thrown away. Prompts are often most of the sequence (a chat
    template's system turn), and the projection onto a 50k vocabulary is a fifth of a small
    model's FLOPs. Held equal to the plain path by tests/test_logprobs.py.
    """
    start = first_scored_position(completion_mask)
    if start > 0:
        keep = input_ids.shape[1] - start
        try:
            logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                           logits_to_keep=keep).logits
        except TypeError as e:  # a forward without logits_to_keep (it fails before computing anything)
            if "logits_to_keep" not in str(e):
                raise
        else:
            # [:, -keep:] also holds for a forward that accepts the argument and ignores it
            return sequence_logps(logits[:, -keep:], input_ids[:, start:], completion_mask[:, start:])
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    return sequence_logps(logits, input_ids, completion_mask)
