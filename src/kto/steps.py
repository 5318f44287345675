"""One micro-step per loss: forward → log-probs → loss, for whatever a registry entry
(`losses.LossSpec`) asks for. The loop in train.py calls `micro_step`, then backward."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .config import TrainConfig
from .data.batching import Batch
from .logprobs import model_logps, token_logps
from .losses import LOSSES, LossOutput, LossSpec, RunningMean, kto_z0
from .reference import Reference


@dataclass
class MicroStats:
    """Sums over examples (reduced across processes by summing). For paired losses an
    "example" is a pair: n counts pairs, n_d/n_u count chosen/rejected completions."""

    names = ("loss", "n", "n_d", "n_u", "reward_d", "reward_u", "logps_d", "logps_u", "z0", "z0_raw", "micro", "tokens")

    values: torch.Tensor = None

    def __post_init__(self):
        if self.values is None:
            self.values = torch.zeros(len(self.names), dtype=torch.float64)

    def add(self, **kw):
        for k, v in kw.items():
            self.values[self.names.index(k)] += float(v)

    def __getitem__(self, k):
        return float(self.values[self.names.index(k)])


class Z0:
    """The reference point: the batch estimate (default), a running mean, or zero.

    'ema' keeps an exponential moving average of the per-micro-batch estimates, so a
    micro-batch of one still gets a usable z0. With a micro-batch of one the mismatched
    completion comes from the previous micro-batch in the epoch order (the loop passes it
    to `collate(kl_completions=...)`), never from the example itself."""

    def __init__(self, mode: str, decay: float):
        self.mode, self.decay, self.ema = mode, decay, None

    def __call__(self, sum_count: torch.Tensor) -> tuple[torch.Tensor, float]:
        """sum_count: (2,) already summed over processes. Returns (z0 clamped, unclamped estimate)."""
        if self.mode == "zero":
            return torch.tensor(0.0), 0.0
        raw = float(sum_count[0] / sum_count[1]) if sum_count[1] > 0 else 0.0
        if self.mode == "ema":
            self.ema = raw if self.ema is None else self.decay * self.ema + (1 - self.decay) * raw
            raw = self.ema
        return torch.tensor(max(0.0, raw)), raw  # clamp after the global mean


@dataclass
class LossState:
    """What a loss carries across micro-steps: its spec, z0, class weights, BCO's running
    mean of rewards, and PPO's value head."""

    spec: LossSpec
    z0: Z0
    weights: tuple[float, float] = (1.0, 1.0)
    delta: RunningMean = field(default_factory=RunningMean)
    value_head: torch.nn.Module | None = None


def loss_kwargs(spec: LossSpec, cfg: TrainConfig, weights) -> dict:
    """The spec's hyper-parameters from the config; class weights from the loop."""
    loop = {"desirable_weight": weights[0], "undesirable_weight": weights[1]}
    return {k: loop[f] if f in loop else getattr(cfg, f) for k, f in spec.hparams.items()}


def _per_token(logps: torch.Tensor, n_tokens: torch.Tensor) -> torch.Tensor:
    return logps / n_tokens.clamp(min=1).to(logps.dtype)


def micro_step(policy, ref: Reference | None, batch: Batch, cfg: TrainConfig, state: LossState, reduce,
               grad: bool = True) -> tuple[torch.Tensor, MicroStats, LossOutput]:
    """Forward, log-probs and loss for one micro-batch. Returns (mean loss, stats, output)."""
    spec = state.spec
    kw = loss_kwargs(spec, cfg, state.weights)
    z0 = raw = 0.0
    if spec.value_head:
        with torch.set_grad_enabled(grad):
            out = policy(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False,
                         output_hidden_states=True)
            tok_lp, mask = token_logps(out.logits, batch.input_ids, batch.completion_mask)
            values = state.value_head(out.hidden_states[-1])[:, :-1]
        ref_tok = ref.token_logps(batch.input_ids, batch.attention_mask, batch.completion_mask)
        res = spec.fn(tok_lp, ref_tok, values, mask, batch.desirable, **kw)
        logps = tok_lp.detach().sum(-1)
    else:
        with torch.set_grad_enabled(grad):
            logps, n_tok = model_logps(policy, batch.input_ids, batch.attention_mask, batch.completion_mask)
        with torch.no_grad():
            if spec.needs_kl and state.z0.mode != "zero":
                kl_logps, _ = model_logps(policy, batch.kl_input_ids, batch.kl_attention_mask, batch.kl_completion_mask)
                both = ref.logps(torch.cat([batch.input_ids, batch.kl_input_ids]),
                                 torch.cat([batch.attention_mask, batch.kl_attention_mask]),
                                 torch.cat([batch.completion_mask, batch.kl_completion_mask]))
                ref_logps, kl_ref = both[: len(logps)], both[len(logps):]
                s, c = kto_z0(kl_logps, kl_ref)
            else:
                ref_logps = ref.logps(batch.input_ids, batch.attention_mask, batch.completion_mask) if spec.needs_ref else None
                s, c = torch.zeros(()), torch.zeros(())
            if spec.needs_kl:
                sum_count = reduce(torch.stack([s, c]).to(logps.device).double()).cpu()
                z0_t, raw = state.z0(sum_count)
                kw["z0"] = z0_t.to(logps.device)
                z0 = float(z0_t)
            if spec.running_delta:  # BCO: δ is the running mean of rewards β·r, this batch included
                rewards = kw["beta"] * (logps - ref_logps)
                sc = reduce(torch.stack([rewards.sum(), torch.tensor(float(len(rewards)), device=rewards.device)]).double())
                delta = state.delta.update(sc.cpu()) if grad else state.delta.value
                kw["delta"] = delta
                z0 = raw = delta / kw["beta"]  # logged as z0, in log-ratio units
        lp = _per_token(logps, n_tok) if spec.mean_logps else logps
        rp = None if ref_logps is None else (_per_token(ref_logps, n_tok) if spec.mean_logps else ref_logps)
        if spec.paired:
            p = len(lp) // 2
            args = (lp[:p], lp[p:]) + ((rp[:p], rp[p:]) if spec.needs_ref else ())
        else:
            args = (lp, rp, batch.desirable) if spec.needs_ref else (lp, batch.desirable)
        res = spec.fn(*args, **kw)
    d = batch.desirable
    stats = MicroStats()
    stats.add(loss=res.losses.detach().sum(), n=len(res.losses), n_d=d.sum(), n_u=(~d).sum(),
              reward_d=res.rewards[d].sum(), reward_u=res.rewards[~d].sum(),
              logps_d=logps.detach()[d].sum(), logps_u=logps.detach()[~d].sum(),
              z0=z0, z0_raw=raw, micro=1, tokens=batch.num_tokens)
    return res.losses.mean(), stats, res


def kto_micro_step(policy, ref: Reference, batch: Batch, cfg: TrainConfig, z0_fn: Z0, reduce, weights, grad: bool = True):
    """Forward, log-probs and KTO loss for one micro-batch. Returns (mean loss, stats, output)."""
    return micro_step(policy, ref, batch, cfg, LossState(LOSSES["kto"], z0_fn, weights), reduce, grad)
