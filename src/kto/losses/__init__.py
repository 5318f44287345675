"""Loss functions by name. Adding a loss: one function (in the file of its family), one
test file, one line in LOSSES saying what the function needs from the loop.

Calling conventions (the loop builds the arguments a spec asks for):
  unpaired, with a reference:  fn(policy_logps, ref_logps, desirable, **kw)       each (B,)
  unpaired, no reference:      fn(policy_logps, desirable, **kw)
  paired, with a reference:    fn(chosen, rejected, ref_chosen, ref_rejected, **kw) each (P,)
  paired, no reference:        fn(chosen, rejected, **kw)
  value head (PPO):            fn(policy_token_logps, ref_token_logps, values, mask, desirable, **kw)  (B, T)
kw holds the hyper-parameters named in `hparams` (function keyword -> TrainConfig field;
the class weights come from the loop, which may set them automatically), plus z0 when
`needs_kl` and delta when `running_delta`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .halo import HALO, kahneman_tversky, log_sigmoid, logistic
from .kto import kto_loss, kto_z0
from .ppo import ValueHead, ppo_loss
from .preference import cdpo_loss, dpo_loss, ipo_loss, orpo_loss, simpo_loss, slic_loss
from .supervised import CONTROL_TOKENS, csft_loss, sft_loss
from .types import LossOutput
from .unpaired import RunningMean, apo_zero_loss, bco_loss


@dataclass
class LossSpec:
    """What a loss needs from the training loop."""

    fn: Callable[..., LossOutput]
    paired: bool = False          # takes (chosen, rejected) pairs of one prompt; --batch-size counts pairs
    needs_ref: bool = True        # False: no reference model is loaded at all
    needs_kl: bool = False        # mismatched pairs in each micro-batch and the reference point z0 (KTO)
    mean_logps: bool = False      # per-token-mean log-probs instead of sums
    value_head: bool = False      # token-level log-probs and a value head (PPO)
    desirable_only: bool = False  # train on desirable examples only (SFT)
    control_tokens: bool = False  # <|good|>/<|bad|> appended to each prompt (CSFT)
    running_delta: bool = False   # a running mean of past rewards passed as delta (BCO)
    hparams: dict[str, str] = field(default_factory=dict)


_W = {"desirable_weight": "desirable_weight", "undesirable_weight": "undesirable_weight"}
LOSSES: dict[str, LossSpec] = {
    "kto": LossSpec(kto_loss, needs_kl=True, hparams={"beta": "beta", **_W}),
    "dpo": LossSpec(dpo_loss, paired=True, hparams={"beta": "beta"}),
    "cdpo": LossSpec(cdpo_loss, paired=True, hparams={"beta": "beta", "label_smoothing": "label_smoothing"}),
    "ipo": LossSpec(ipo_loss, paired=True, mean_logps=True, hparams={"tau": "ipo_tau"}),
    "slic": LossSpec(slic_loss, paired=True, needs_ref=False, hparams={"delta": "slic_delta", "lam": "slic_lambda"}),
    "simpo": LossSpec(simpo_loss, paired=True, needs_ref=False, mean_logps=True,
                      hparams={"beta": "simpo_beta", "gamma": "simpo_gamma"}),
    "orpo": LossSpec(orpo_loss, paired=True, needs_ref=False, mean_logps=True, hparams={"lam": "orpo_lambda"}),
    "sft": LossSpec(sft_loss, needs_ref=False, mean_logps=True, desirable_only=True),
    "csft": LossSpec(csft_loss, needs_ref=False, mean_logps=True, control_tokens=True),
    "ppo": LossSpec(ppo_loss, value_head=True, hparams={"clip": "ppo_clip", "value_coef": "ppo_value_coef",
                                                         "kl_coef": "ppo_kl_coef", "beta": "beta"}),
    "apo-zero": LossSpec(apo_zero_loss, hparams={"beta": "beta"}),
    "bco": LossSpec(bco_loss, running_delta=True, hparams={"beta": "beta"}),
}

__all__ = [
    "LOSSES", "LossSpec", "LossOutput", "HALO", "logistic", "log_sigmoid", "kahneman_tversky",
    "kto_loss", "kto_z0", "dpo_loss", "cdpo_loss", "ipo_loss", "slic_loss", "simpo_loss", "orpo_loss",
    "sft_loss", "csft_loss", "ppo_loss", "ValueHead", "apo_zero_loss", "bco_loss", "RunningMean", "CONTROL_TOKENS",
]
