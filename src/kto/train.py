"""The training loop, read top to bottom: data → model → (forward → log-probs → loss →
backward → log) per step → evaluate → save. Runs on accelerate (CPU, one GPU, DDP)."""
from __future__ import annotations

import copy
import json
import math
import os
import random
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .config import TrainConfig
from .data.batching import Batch, collate, epoch_batches
from .data.records import Example
from .data.schema import load_examples
from .data.tokenize import Encoder, TokenizedExample
from .errors import DataError, KTOError
from .logprobs import model_logps
from .losses import kto_loss, kto_z0
from .reference import Reference
from .weights import auto_weights, band_advice


def say(msg: str) -> None:
    if os.environ.get("RANK", "0") == "0":  # one voice under torchrun / accelerate launch
        print(f"[kto] {msg}", flush=True)


# ----------------------------------------------------------------------------- data

def split_by_prompt(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Hold out whole prompts, so no held-out prompt is ever trained on."""
    if fraction <= 0:
        return examples, []
    keys = sorted({json.dumps(e.prompt, sort_keys=True) for e in examples})
    random.Random(seed).shuffle(keys)
    held = set(keys[: max(1, round(fraction * len(keys)))])
    train = [e for e in examples if json.dumps(e.prompt, sort_keys=True) not in held]
    held_out = [e for e in examples if json.dumps(e.prompt, sort_keys=True) in held]
    return train, held_out


@dataclass
class Prepared:
    train: list[TokenizedExample]
    eval: list[TokenizedExample]
    notes: list[str] = field(default_factory=list)


def prepare_data(cfg: TrainConfig, tokenizer, examples: list[Example]) -> Prepared:
    train_ex, eval_ex = split_by_prompt(examples, cfg.eval_fraction, cfg.seed)
    enc = Encoder(tokenizer)
    train = enc(train_ex, cfg.max_length, cfg.max_prompt_length)
    held = enc(eval_ex, cfg.max_length, cfg.max_prompt_length)
    notes = [f"{k}: {v}" for k, v in enc.stats.items()]
    if not train:
        raise DataError(f"{cfg.data}: every example was truncated away (max_length={cfg.max_length})")
    for i, t in enumerate(train):  # positions in the training set (used by audits and metrics)
        t.index = i
    return Prepared(train, held, notes)


# ----------------------------------------------------------------------------- one micro-step

@dataclass
class MicroStats:
    """Sums over examples (reduced across processes by summing)."""

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
    """The reference point: the batch estimate (default), a running mean, or zero."""

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


def kto_micro_step(policy, ref: Reference, batch: Batch, cfg: TrainConfig, z0_fn: Z0, reduce, weights, grad: bool = True):
    """Forward, log-probs and KTO loss for one micro-batch. Returns (mean loss, stats)."""
    with torch.set_grad_enabled(grad):
        logps, _ = model_logps(policy, batch.input_ids, batch.attention_mask, batch.completion_mask)
    need_kl = z0_fn.mode != "zero"
    with torch.no_grad():
        if need_kl:
            kl_logps, _ = model_logps(policy, batch.kl_input_ids, batch.kl_attention_mask, batch.kl_completion_mask)
            both = ref.logps(torch.cat([batch.input_ids, batch.kl_input_ids]),
                             torch.cat([batch.attention_mask, batch.kl_attention_mask]),
                             torch.cat([batch.completion_mask, batch.kl_completion_mask]))
            ref_logps, kl_ref = both[: len(logps)], both[len(logps):]
            s, c = kto_z0(kl_logps, kl_ref)
        else:
            ref_logps = ref.logps(batch.input_ids, batch.attention_mask, batch.completion_mask)
            s, c = torch.zeros(()), torch.zeros(())
        sum_count = reduce(torch.stack([s, c]).to(logps.device).double()).cpu()
    z0, raw = z0_fn(sum_count)
    out = kto_loss(logps, ref_logps, batch.desirable, z0.to(logps.device), cfg.beta, *weights)
    d = batch.desirable
    stats = MicroStats()
    stats.add(loss=out.losses.detach().sum(), n=len(d), n_d=d.sum(), n_u=(~d).sum(),
              reward_d=out.rewards[d].sum(), reward_u=out.rewards[~d].sum(),
              logps_d=logps.detach()[d].sum(), logps_u=logps.detach()[~d].sum(),
              z0=z0, z0_raw=raw, micro=1, tokens=batch.num_tokens)
    return out.losses.mean(), stats, out


def summarize(stats: MicroStats) -> dict:
    """Means per example (per class for rewards and log-probs); None where a class is absent."""
    def per(total, n):
        return None if stats[n] == 0 else stats[total] / stats[n]

    r_d, r_u = per("reward_d", "n_d"), per("reward_u", "n_u")
    return {
        "loss": stats["loss"] / max(stats["n"], 1),
        "z0": stats["z0"] / max(stats["micro"], 1),
        "z0_raw": stats["z0_raw"] / max(stats["micro"], 1),
        "reward_desirable": r_d,
        "reward_undesirable": r_u,
        "reward_margin": None if r_d is None or r_u is None else r_d - r_u,
        "logps_desirable": per("logps_d", "n_d"),
        "logps_undesirable": per("logps_u", "n_u"),
        "n_desirable": int(stats["n_d"]),
        "n_undesirable": int(stats["n_u"]),
    }


# ----------------------------------------------------------------------------- evaluation

@torch.no_grad()
def evaluate(policy, ref, examples: list[TokenizedExample], cfg: TrainConfig, pad_id: int, device, reduce, weights) -> dict | None:
    """Held-out loss, z0 and reward accuracy (share of examples whose β(r − z0) has the
    sign of their label; a tie counts as wrong)."""
    if len(examples) < 2:
        return None
    was_training = policy.training
    policy.eval()
    stats, correct = MicroStats(), 0
    z0_fn = Z0("zero" if cfg.z0 == "zero" else "batch", cfg.z0_ema_decay)
    for idx in epoch_batches(len(examples), cfg.batch_size, cfg.seed, 0, shuffle=False):
        batch = collate([examples[i] for i in idx], pad_id, cfg.max_length).to(device)
        _, s, out = kto_micro_step(policy, ref, batch, cfg, z0_fn, lambda t: t, weights, grad=False)
        stats.values += s.values
        margin = out.rewards - cfg.beta * float(s["z0"])
        sign = torch.where(batch.desirable, 1.0, -1.0)
        correct += int((margin * sign > 0).sum())
    policy.train(was_training)
    result = summarize(stats)
    result["reward_accuracy"] = correct / int(stats["n"])
    result["examples"] = int(stats["n"])
    return result


# ----------------------------------------------------------------------------- output folder

def check_output(path: str, overwrite: bool) -> Path:
    if not path:
        raise KTOError("--output is required")
    out = Path(path)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise KTOError(f"{out}: output folder exists and is not empty; choose another or pass --overwrite")
    return out


def staging_dir(out: Path) -> Path:
    """Runs write here; the folder is moved to its final name only when the run succeeds."""
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def publish(tmp: Path, out: Path) -> None:
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


# ----------------------------------------------------------------------------- the loop

def build_policy(cfg: TrainConfig):
    from .models import load_model

    policy, tok = load_model(cfg.model, seed=cfg.seed)
    if cfg.lora_r > 0:
        from peft import LoraConfig, get_peft_model

        policy = get_peft_model(policy, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
                                                   target_modules="all-linear", task_type="CAUSAL_LM"))
        ref = Reference(policy=policy)
    elif cfg.ref_model:
        ref = Reference(model=load_model(cfg.ref_model, seed=cfg.seed)[0])
    else:
        ref = Reference(model=copy.deepcopy(policy))
    return policy, ref, tok


def train(cfg: TrainConfig, examples: list[Example] | None = None) -> Path:
    """Train and write the output folder; returns its path. Bad input fails before any model loads."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    out = check_output(cfg.output, cfg.overwrite)
    if examples is None:
        examples, report = load_examples(cfg.data, cfg.columns, cfg.data_split)
        say(f"read {report.rows} rows ({report.schema}) from {cfg.data}: {len(examples)} examples")
        for line in report.lines():
            say(line)
    if cfg.loss == "kto" and cfg.z0 == "batch" and len(examples) < 2:
        raise DataError(f"{cfg.data}: {len(examples)} example(s): too few for one micro-batch (need at least 2)")

    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    acc = Accelerator(mixed_precision="bf16" if use_bf16 else "no", cpu=not torch.cuda.is_available())
    set_seed(cfg.seed)
    from .models import load_tokenizer

    tok = load_tokenizer(cfg.model)  # the data checks need the tokenizer only: bad data fails before any model loads
    data = prepare_data(cfg, tok, examples)
    for note in data.notes:
        say(note)
    n_d = sum(t.desirable for t in data.train)
    n_u = len(data.train) - n_d
    weights = auto_weights(n_d, n_u) if cfg.weights == "auto" else (cfg.desirable_weight, cfg.undesirable_weight)
    advice = band_advice(*weights, n_d, n_u)
    if advice:
        warnings.warn(advice, stacklevel=1)
        say(f"warning: {advice}")
    say(f"train: {len(data.train)} examples ({n_d} desirable, {n_u} undesirable), held out: {len(data.eval)}; "
        f"λ_D={weights[0]:.4g} λ_U={weights[1]:.4g}")

    world, rank = acc.num_processes, acc.process_index
    per_epoch = len(epoch_batches(len(data.train), cfg.batch_size, cfg.seed, 0)) // world // cfg.grad_accum
    if per_epoch == 0:
        raise DataError(f"{cfg.data}: {len(data.train)} training examples are too few for one optimiser step "
                        f"(batch {cfg.batch_size} × accumulation {cfg.grad_accum} × {world} process(es))")
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * per_epoch))
    policy, ref, _ = build_policy(cfg)

    params = [p for p in policy.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = get_scheduler("cosine" if cfg.scheduler == "cosine" else "constant_with_warmup", opt,
                          num_warmup_steps=math.ceil(cfg.warmup_ratio * total), num_training_steps=total)
    policy, opt = acc.prepare(policy, opt)
    if ref.model is not None:
        ref.model.to(acc.device)
    else:
        ref.policy = acc.unwrap_model(policy)

    def reduce(t):
        return acc.reduce(t, "sum") if world > 1 else t

    def micro_batches():
        epoch = 0
        while True:
            batches = epoch_batches(len(data.train), cfg.batch_size, cfg.seed, epoch)
            usable = len(batches) // world * world
            for idx in batches[rank:usable:world]:
                yield epoch, collate([data.train[i] for i in idx], tok.pad_token_id, cfg.max_length)
            epoch += 1

    tmp = staging_dir(out) if acc.is_main_process else None
    try:
        if tmp:
            cfg.save(tmp / "config.yaml")
        evals = {"start": evaluate(policy, ref, data.eval, cfg, tok.pad_token_id, acc.device, reduce, weights)}
        z0_fn = Z0(cfg.z0, cfg.z0_ema_decay)
        stream = micro_batches()
        metrics_file = open(tmp / "metrics.jsonl", "w") if tmp else None
        bar = tqdm(total=total, desc="kto train", disable=not (cfg.progress and acc.is_main_process), unit="step")
        policy.train()
        for step in range(1, total + 1):
            t0 = time.perf_counter()
            stats = MicroStats()
            for k in range(cfg.grad_accum):
                epoch, batch = next(stream)
                batch = batch.to(acc.device)
                sync = acc.no_sync(policy) if k < cfg.grad_accum - 1 and world > 1 else _null()
                with sync:
                    loss, s, _ = kto_micro_step(policy, ref, batch, cfg, z0_fn, reduce, weights)
                    acc.backward(loss / cfg.grad_accum)  # mean of micro-batch means: 8×1 = 4×2
                stats.values += s.values
            grad_norm = acc.clip_grad_norm_(params, cfg.max_grad_norm) if cfg.max_grad_norm > 0 else _grad_norm(params)
            lr = sched.get_last_lr()[0]
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            stats.values = reduce(stats.values.to(acc.device)).cpu() if world > 1 else stats.values
            elapsed = time.perf_counter() - t0
            row = {"step": step, "epoch": epoch, **summarize(stats), "grad_norm": float(grad_norm), "lr": lr,
                   "tokens_per_sec": stats["tokens"] / elapsed, "seconds": elapsed}
            if metrics_file and (step % cfg.logging_steps == 0 or step == 1 or step == total):
                metrics_file.write(json.dumps(row) + "\n")
                metrics_file.flush()
            bar.set_postfix(loss=f"{row['loss']:.4f}", z0=f"{row['z0']:.3g}", tok_s=f"{row['tokens_per_sec']:.0f}")
            bar.update()
            if not math.isfinite(row["loss"]):
                raise KTOError(f"step {step}: loss is {row['loss']}; stopping (lower --lr or check the data)")
        bar.close()
        if metrics_file:
            metrics_file.close()
        evals["end"] = evaluate(policy, ref, data.eval, cfg, tok.pad_token_id, acc.device, reduce, weights)
        acc.wait_for_everyone()
        if tmp:
            (tmp / "eval.json").write_text(json.dumps(evals, indent=2))
            model = acc.unwrap_model(policy)
            if cfg.lora_r > 0:
                model = model.merge_and_unload()
            model.save_pretrained(tmp / "model")
            tok.save_pretrained(tmp / "model")
            from .report import write_report

            write_report(tmp)
            publish(tmp, out)
    except BaseException:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    if acc.is_main_process:
        for when, e in evals.items():
            if e:
                say(f"eval {when}: loss {e['loss']:.4f}, z0 {e['z0']:.4g}, reward accuracy {e['reward_accuracy']:.3f}")
        say(f"wrote {out}")
    return out


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _grad_norm(params) -> float:
    norms = [p.grad.detach().norm() for p in params if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0
