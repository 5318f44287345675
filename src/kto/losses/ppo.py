"""Offline PPO-Clip with dummy rewards (SPEC.md §4): +1 (desirable) / −1 (undesirable) on
the last completion token, π_old = πref (never updated), a value head on the policy's last
hidden state, and a penalty on drifting from the reference.

Choices, where the KTO authors' code (HALOs PPOTrainer) is not followed, with the reason:
- ratio clipped to [0.25, 4.0] (SPEC.md §4, the paper); HALOs now uses [0.5, 2].
- KL penalty ½·(log πθ − log πref)² per token (the "k2" estimator). HALOs uses the mean
  of log πref − log πθ on the data's tokens; since the tokens are not sampled from πθ
  that term is not a KL and its gradient just raises the likelihood of every token.
  k2 is ≥ 0, zero with zero gradient at the reference, and penalises drift either way.
- critic target: the GAE return A + V (HALOs regresses on the reward-to-go that excludes
  the current token, whose target at the last token is 0 although the reward is there).
- per-sequence means (each sequence weighs the same, as in every other loss here), where
  HALOs averages over all tokens of the batch.
Kept from HALOs: γ = 0.99, λ_GAE = 0.95, advantages whitened over the micro-batch's
completion tokens, critic coefficient 0.01, KL coefficient 0.1.
"""
from __future__ import annotations

import torch

from .types import LossOutput


class ValueHead(torch.nn.Module):
    """V(s_t) = w·h_t + b on the last hidden state, zero-initialised so training starts
    from V = 0 (and the first loss is a function of the completion lengths only)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.linear = torch.nn.Linear(hidden_size, 1)
        torch.nn.init.zeros_(self.linear.weight)
        torch.nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (B, T, H) -> values (B, T)."""
        return self.linear(hidden.float()).squeeze(-1)


def _masked_mean(x, mask, dim=None):
    m = mask.to(x.dtype)
    return (x * m).sum(dim) / m.sum(dim).clamp(min=1)


def gae(values: torch.Tensor, rewards: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Generalised advantage estimates (B, T): δ_t = r_t + γV_{t+1} − V_t, A_t = δ_t + γλA_{t+1},
    with V and r zero outside the mask (so V past the last token is 0)."""
    m = mask.to(values.dtype)
    values, rewards = values * m, rewards * m
    adv = torch.zeros_like(values)
    running = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        nxt = values[:, t + 1] if t + 1 < values.shape[1] else torch.zeros_like(running)
        running = rewards[:, t] + gamma * nxt - values[:, t] + gamma * lam * running
        adv[:, t] = running
    return adv * m


def ppo_loss(policy_token_logps, ref_token_logps, values, mask, desirable, *, clip: float = 0.25,
             gamma: float = 0.99, lam: float = 0.95, value_coef: float = 0.01, kl_coef: float = 0.1,
             beta: float = 0.1) -> LossOutput:
    """Per-sequence offline PPO-Clip loss.

    Args:
        policy_token_logps, ref_token_logps: (B, T) log-prob of each next token (from
            `logprobs.token_logps`); ref is π_old.
        values: (B, T) value-head outputs at the same positions (with gradient).
        mask: (B, T) bool, the completion tokens.
        desirable: (B,) bool; reward +1 / −1 on each sequence's last completion token.
        clip: the ratio is clipped to [clip, 1/clip].
        beta: only for the reported rewards β·r (r the summed log-ratio).
    Returns losses (B,) = policy loss + value_coef·value loss + kl_coef·KL penalty, each a
    mean over the sequence's tokens.

    policy loss per token: max(−Â·ρ, −Â·clip(ρ, c, 1/c)), ρ = exp(log πθ − log πref);
    value loss per token: ½(V − R)², R = A + V_old (detached); KL: ½(log ρ)².
    """
    mask = mask.bool()
    score = torch.where(desirable, 1.0, -1.0).to(values.dtype)
    last = mask.long().cumsum(1).argmax(1)  # position of each row's last completion token
    rewards = torch.zeros_like(values)
    rewards[torch.arange(len(last)), last] = score
    old_values = values.detach()
    adv = gae(old_values, rewards, mask, gamma, lam)
    returns = adv + old_values * mask
    mean = _masked_mean(adv, mask)
    var = _masked_mean((adv - mean) ** 2, mask)
    adv_n = ((adv - mean) * torch.rsqrt(var + 1e-8) * mask).detach()

    log_ratio = policy_token_logps - ref_token_logps.detach()
    ratio = torch.exp(log_ratio)
    pg = torch.max(-adv_n * ratio, -adv_n * torch.clamp(ratio, clip, 1.0 / clip))
    losses = (_masked_mean(pg, mask, 1)
              + value_coef * _masked_mean(0.5 * (values - returns) ** 2, mask, 1)
              + kl_coef * _masked_mean(0.5 * log_ratio ** 2, mask, 1))
    r = (log_ratio * mask).sum(1)
    return LossOutput(losses, (beta * r).detach())
