"""Paired preference losses (SPEC.md §4): DPO, cDPO, IPO, SLiC, SimPO, ORPO.

Every function takes the log-probs of the chosen (y_w) and rejected (y_l) completion of
the same P prompts, shape (P,) each, and returns one loss per pair. Whether the log-probs
are sums or per-token means is the caller's job (the registry says which each loss wants):
DPO, cDPO and SLiC take sums; IPO, SimPO and ORPO take per-token means.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .types import LossOutput


def _h(chosen, rejected, ref_chosen, ref_rejected, beta):
    """h = β·(r_w − r_l) with r = log πθ − log πref (SPEC.md §4). Returns (h, rewards (2P,))."""
    r_w, r_l = chosen - ref_chosen, rejected - ref_rejected
    return beta * (r_w - r_l), (beta * torch.cat([r_w, r_l])).detach()


def dpo_loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, beta: float = 0.1) -> LossOutput:
    """DPO: −log σ(h), h = β·(r_w − r_l).

    Args: four (P,) summed log-probs (policy chosen/rejected, reference chosen/rejected).
    Returns: losses (P,), rewards (2P,) = β·r, chosen first.
    At policy = reference h = 0, so every loss is log 2 ≈ 0.6931.
    """
    h, rewards = _h(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
    return LossOutput(-F.logsigmoid(h), rewards)


def cdpo_loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps,
              beta: float = 0.1, label_smoothing: float = 0.2) -> LossOutput:
    """Conservative DPO: (1−ε)(−log σ(h)) + ε(−log σ(−h)); ε is the assumed share of flipped labels.

    Shapes as `dpo_loss`. ε = 0.2 is the KTO authors' default (HALOs cdpo config).
    """
    h, rewards = _h(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
    eps = label_smoothing
    return LossOutput(-(1 - eps) * F.logsigmoid(h) - eps * F.logsigmoid(-h), rewards)


def ipo_loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, tau: float = 0.1) -> LossOutput:
    """IPO: (r̄_w − r̄_l − 1/(2τ))², r̄ the per-token-mean log-ratio.

    Args: four (P,) per-token-mean log-probs (mean over the completion's tokens), so
    r̄ = mean log πθ − mean log πref over the same tokens. Rewards are reported as τ·r̄
    (IPO has no β; τ plays its part). At policy = reference: (0 − 1/(2·0.1))² = 25.
    """
    r_w, r_l = chosen_logps - ref_chosen_logps, rejected_logps - ref_rejected_logps
    losses = (r_w - r_l - 1.0 / (2.0 * tau)) ** 2
    return LossOutput(losses, (tau * torch.cat([r_w, r_l])).detach())


def slic_loss(chosen_logps, rejected_logps, delta: float = 1.0, lam: float = 0.1) -> LossOutput:
    """SLiC-HF: max(0, δ − log πθ(y_w|x) + log πθ(y_l|x)) + λ·(−log πθ(y_w|x)). No reference.

    Args: two (P,) summed log-probs. δ = 1.0 and λ = 0.1 are the KTO authors' defaults
    (HALOs slic config: "beta" 1.0 is the margin, lambda_coef 0.1).
    Rewards reported: the summed log-probs themselves (the score SLiC calibrates).
    """
    losses = torch.clamp(delta - chosen_logps + rejected_logps, min=0) - lam * chosen_logps
    return LossOutput(losses, torch.cat([chosen_logps, rejected_logps]).detach())


def simpo_loss(chosen_logps, rejected_logps, beta: float = 2.0, gamma: float = 0.5) -> LossOutput:
    """SimPO: −log σ(β·m_w − β·m_l − γ), m the per-token-mean log-prob. No reference.

    Args: two (P,) per-token-mean log-probs. β = 2.0, γ = 0.5 as in the KTO authors'
    simpo config (SimPO's β lives on the per-token scale, hence not 0.1).
    Rewards reported: β·m. With equal means the loss is −log σ(−0.5) ≈ 0.9741.
    """
    h = beta * (chosen_logps - rejected_logps) - gamma
    return LossOutput(-F.logsigmoid(h), (beta * torch.cat([chosen_logps, rejected_logps])).detach())


def log_odds(mean_logps: torch.Tensor) -> torch.Tensor:
    """log(p / (1 − p)) with p = exp(mean log-prob); log1p(−exp(·)) keeps it finite for p near 0."""
    return mean_logps - torch.log1p(-torch.exp(mean_logps).clamp(max=1 - 1e-7))


def orpo_loss(chosen_logps, rejected_logps, lam: float = 0.25) -> LossOutput:
    """ORPO: NLL(y_w) − λ·log σ(log odds(y_w) − log odds(y_l)). No reference.

    Args: two (P,) per-token-mean log-probs; NLL(y_w) = −mean log-prob of y_w, and the
    odds use p = exp(mean log-prob). λ = 0.25 is the KTO authors' default (HALOs orpo
    config, OR_scale); the ORPO paper uses 0.1. Rewards reported: λ·log odds.
    """
    lo_w, lo_l = log_odds(chosen_logps), log_odds(rejected_logps)
    losses = -chosen_logps - lam * F.logsigmoid(lo_w - lo_l)
    return LossOutput(losses, (lam * torch.cat([lo_w, lo_l])).detach())
