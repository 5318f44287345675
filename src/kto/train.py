"""The training loop, read top to bottom: data → model → (forward → log-probs → loss →
backward → log) per step → evaluate → save. Runs on accelerate (CPU, one GPU, DDP)."""
from __future__ import annotations

import contextlib
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
from .data.batching import Batch, collate, collate_pairs, epoch_batches
from .data.records import Example
from .data.schema import load_examples
from .data.tokenize import Encoder, TokenizedExample
from .errors import DataError, KTOError
from .losses import CONTROL_TOKENS, LOSSES, LossSpec, ValueHead, kto_loss, kto_z0  # noqa: F401 (re-exported)
from .reference import Reference
from .steps import LossState, MicroStats, Z0, kto_micro_step, micro_step  # noqa: F401 (re-exported)
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


def one_y_per_x(examples: list[Example], seed: int) -> list[Example]:
    """Keep one completion per prompt, drawn with the seed: data with no pairs at all (SPEC.md §3)."""
    groups: dict[str, list[Example]] = {}
    for e in examples:
        groups.setdefault(json.dumps(e.prompt, sort_keys=True), []).append(e)
    rng = random.Random(seed)
    keep = {id(rng.choice(g)) for g in groups.values()}
    return [e for e in examples if id(e) in keep]


def subsample(examples: list[Example], keep_desirable: float, keep_undesirable: float, seed: int) -> list[Example]:
    """Keep a share of each class (at least one example of a class that is present), drawn with the seed."""
    rng = random.Random(seed + 1)
    keep = set()
    for label, share in ((True, keep_desirable), (False, keep_undesirable)):
        idx = [i for i, e in enumerate(examples) if e.desirable == label]
        keep.update(rng.sample(idx, max(1, round(share * len(idx)))) if idx else [])
    return [e for i, e in enumerate(examples) if i in keep]


def make_pairs(tokenized: list[TokenizedExample], source: list[Example]) -> tuple[list[tuple], int]:
    """(chosen, rejected) pairs from examples that share a pair_id (t.index points into
    `source`). Returns the pairs and how many examples had no usable partner."""
    groups: dict[int, list[TokenizedExample]] = {}
    for t in tokenized:
        pid = source[t.index].pair_id
        if pid is not None:
            groups.setdefault(pid, []).append(t)
    pairs = []
    for g in groups.values():
        d, u = [t for t in g if t.desirable], [t for t in g if not t.desirable]
        if len(d) == 1 and len(u) == 1:
            pairs.append((d[0], u[0]))
    return pairs, len(tokenized) - 2 * len(pairs)


def add_control_vocab(tok) -> bool:
    """Add CSFT's control tokens to the tokenizer (same ids every time for one tokenizer).
    Returns True when the vocabulary grew."""
    new = [t for t in CONTROL_TOKENS.values() if t not in tok.get_vocab()]
    if new:
        tok.add_tokens(new, special_tokens=True)
    return bool(new)


def add_control_tokens(examples: list[TokenizedExample], tokenizer, max_length: int) -> list[TokenizedExample]:
    """CSFT: append <|good|> or <|bad|> to each prompt (conditioning, not scored); cut the
    completion's end if the sequence grows past max_length; drop it if nothing is left."""
    ids = {label: tokenizer.convert_tokens_to_ids(t) for label, t in CONTROL_TOKENS.items()}
    out = []
    for t in examples:
        t.prompt_ids = t.prompt_ids + [ids[t.desirable]]
        t.completion_ids = t.completion_ids[: max_length - len(t.prompt_ids)]
        if t.completion_ids:
            out.append(t)
    return out


@dataclass
class Prepared:
    train: list[TokenizedExample]
    eval: list[TokenizedExample]
    notes: list[str] = field(default_factory=list)
    pairs: list[tuple] = field(default_factory=list)  # (chosen, rejected), for paired losses
    eval_pairs: list[tuple] = field(default_factory=list)

    def items(self, spec: LossSpec, held_out: bool = False) -> list:
        """What the loss batches: pairs for paired losses, single examples otherwise."""
        if spec.paired:
            return self.eval_pairs if held_out else self.pairs
        return self.eval if held_out else self.train


def prepare_data(cfg: TrainConfig, tokenizer, examples: list[Example], spec: LossSpec | None = None) -> Prepared:
    spec = spec or LOSSES[cfg.loss]
    notes = []
    if cfg.one_y_per_x:
        before = len(examples)
        examples = one_y_per_x(examples, cfg.seed)
        notes.append(f"one y per x: kept {len(examples)} of {before} examples")
    train_ex, eval_ex = split_by_prompt(examples, cfg.eval_fraction, cfg.seed)
    if cfg.keep_desirable < 1 or cfg.keep_undesirable < 1:  # training data only: the held-out set stays comparable
        before = len(train_ex)
        train_ex = subsample(train_ex, cfg.keep_desirable, cfg.keep_undesirable, cfg.seed)
        notes.append(f"subsampled (desirable {cfg.keep_desirable:g}, undesirable {cfg.keep_undesirable:g}): "
                     f"kept {len(train_ex)} of {before} training examples")
    if spec.desirable_only:
        train_ex, eval_ex = [e for e in train_ex if e.desirable], [e for e in eval_ex if e.desirable]
        notes.append(f"--loss {cfg.loss} trains on desirable completions only: {len(train_ex)} examples")
    if not train_ex:
        raise DataError(f"{cfg.data or 'the data'}: no training examples left ({len(eval_ex)} held out for "
                        f"evaluation{', desirable only' if spec.desirable_only else ''}); lower --eval-fraction or add data")
    enc = Encoder(tokenizer)
    train = enc(train_ex, cfg.max_length, cfg.max_prompt_length)
    held = enc(eval_ex, cfg.max_length, cfg.max_prompt_length)
    notes += [f"{k}: {v}" for k, v in enc.stats.items()]
    if spec.control_tokens:
        add_control_vocab(tokenizer)
        train, held = (add_control_tokens(x, tokenizer, cfg.max_length) for x in (train, held))
    if not train:
        raise DataError(f"{cfg.data}: every example was truncated away (max_length={cfg.max_length})")
    pairs, eval_pairs = [], []
    if spec.paired:
        pairs, lone = make_pairs(train, train_ex)
        eval_pairs, _ = make_pairs(held, eval_ex)
        if not pairs:
            raise DataError(f"{cfg.data or 'the data'}: --loss {cfg.loss} needs paired data (prompt/chosen/rejected, "
                            f"HH chosen/rejected or LLMBar rows), but its {len(train)} training examples hold no "
                            "(desirable, undesirable) pair of one prompt; use an unpaired loss (kto, apo-zero, bco, ppo, csft, sft)")
        if lone:
            notes.append(f"--loss {cfg.loss}: {lone} training example(s) without a partner skipped")
    for i, t in enumerate(train):  # positions in the training set (used by audits and metrics)
        t.index = i
    return Prepared(train, held, notes, pairs, eval_pairs)


# ----------------------------------------------------------------------------- metrics

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

def make_batch(spec: LossSpec, items: list, idx: list[int], cfg: TrainConfig, pad_id: int, kl_completions=None) -> Batch:
    """Collate the items at `idx` the way the loss needs them (pairs, KL rows, or plain)."""
    if spec.paired:
        return collate_pairs([items[i] for i in idx], pad_id, cfg.max_length)
    with_kl = spec.needs_kl and cfg.z0 != "zero"
    return collate([items[i] for i in idx], pad_id, cfg.max_length, with_kl=with_kl, kl_completions=kl_completions)


def micro_batches(spec: LossSpec, items: list, cfg: TrainConfig, pad_id: int, world: int = 1, rank: int = 0):
    """This process's micro-batches, epoch after epoch: yields (epoch, Batch)."""
    epoch = 0
    while True:
        batches = epoch_batches(len(items), cfg.batch_size, cfg.seed, epoch)
        usable = len(batches) // world * world
        for k in range(rank, usable, world):
            kl = None
            if spec.needs_kl and cfg.z0 != "zero" and len(batches[k]) == 1:
                # z0 'ema' with a micro-batch of one: the mismatched completion is the previous
                # micro-batch's (the epoch's last for the first), never the example's own.
                partner = batches[k - 1][-1]
                if partner == batches[k][0]:
                    raise DataError("one training example cannot form a mismatched pair for z0; "
                                    "add examples or use --z0 zero")
                kl = [items[partner].completion_ids]
            yield epoch, make_batch(spec, items, batches[k], cfg, pad_id, kl)
        epoch += 1


@torch.no_grad()
def evaluate(policy, ref, examples: list, cfg: TrainConfig, pad_id: int, device, reduce, weights,
             state: LossState | None = None) -> dict | None:
    """Held-out loss, z0 and reward accuracy: for unpaired losses the share of examples
    whose β·r − β·z0 has the sign of their label (a tie counts as wrong); for paired losses
    the share of pairs whose chosen reward beats the rejected one; None without a reference
    and without pairs (SFT, CSFT). `examples` holds pairs for paired losses."""
    spec = state.spec if state else LOSSES[cfg.loss]
    if len(examples) < (1 if spec.paired else 2):
        return None
    was_training = policy.training
    policy.eval()
    st = LossState(spec, Z0("zero" if cfg.z0 == "zero" else "batch", cfg.z0_ema_decay), weights,
                   **({"delta": state.delta, "value_head": state.value_head} if state else {}))
    stats, correct, judged = MicroStats(), 0, 0
    batch_size = max(2, cfg.batch_size) if spec.needs_kl else cfg.batch_size
    for idx in epoch_batches(len(examples), batch_size, cfg.seed, 0, shuffle=False):
        batch = make_batch(spec, examples, idx, cfg, pad_id).to(device)
        _, s, out = micro_step(policy, ref, batch, cfg, st, lambda t: t, grad=False)
        stats.values += s.values
        if spec.paired:
            p = len(out.losses)
            correct += int((out.rewards[:p] > out.rewards[p:]).sum())
            judged += p
        elif spec.needs_ref:
            margin = out.rewards - cfg.beta * float(s["z0"])
            sign = torch.where(batch.desirable, 1.0, -1.0)
            correct += int((margin * sign > 0).sum())
            judged += len(margin)
    policy.train(was_training)
    result = summarize(stats)
    result["reward_accuracy"] = correct / judged if judged else None
    result["examples"] = int(stats["n"])
    return result


# ----------------------------------------------------------------------------- output folder

def check_output(path: str, overwrite: bool) -> Path:
    if not path:
        raise KTOError("--output is required")
    out = Path(path).expanduser().absolute()
    if Path.cwd().resolve().is_relative_to(out.resolve()):
        # the run is moved into place at the end: the folder we stand in cannot be replaced
        raise KTOError(f"{path}: the output cannot be the current folder or one that holds it; name a new subfolder")
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

def build_policy(cfg: TrainConfig, spec: LossSpec | None = None):
    """Policy, reference (None for losses that need none: none is loaded) and tokenizer."""
    from .models import load_model

    spec = spec or LOSSES[cfg.loss]
    policy, tok = load_model(cfg.model, seed=cfg.seed)
    without_dropout(policy)
    if spec.control_tokens and add_control_vocab(tok):  # CSFT: <|good|>/<|bad|> get embeddings of their own
        policy.resize_token_embeddings(len(tok))
    if cfg.lora_r > 0:
        from peft import LoraConfig, get_peft_model

        policy = get_peft_model(policy, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
                                                   target_modules="all-linear", task_type="CAUSAL_LM"))
    if not spec.needs_ref:
        ref = None
    elif cfg.ref_model:  # wins over the adapter-disabled base as well
        ref = Reference(model=load_model(cfg.ref_model, seed=cfg.seed)[0])
    elif cfg.lora_r > 0:
        ref = Reference(policy=policy)
    else:
        ref = Reference(model=copy.deepcopy(policy))
    return policy, ref, tok


def without_dropout(model) -> None:
    """Switch dropout off for good. The reference runs in eval mode; a policy whose dropout
    stayed on would differ from it at step 1 (r ≠ 0, the first KTO loss ≠ 0.5) and its
    rewards and z0 would carry dropout noise. Covers nn.Dropout modules and the float
    rates that some attention implementations read at call time (e.g. Llama's
    `attention_dropout`)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        for name in ("attention_dropout", "attn_dropout", "dropout"):
            if isinstance(getattr(module, name, None), float):
                setattr(module, name, 0.0)


def train(cfg: TrainConfig, examples: list[Example] | None = None) -> Path:
    """Train and write the output folder; returns its path. Bad input fails before any model loads."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    out = check_output(cfg.output, cfg.overwrite)
    if not cfg.progress:  # transformers' own bars (loading and writing weights) too
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    if examples is None:
        if not cfg.data:
            raise KTOError("--data is required: a feedback file (.jsonl, .jsonl.gz, .json, .parquet, .csv) or a Hub dataset name")
        examples, report = load_examples(cfg.data, cfg.columns, cfg.data_split)
        say(f"read {report.rows} rows ({report.schema}) from {cfg.data}: {len(examples)} examples")
        for line in report.lines():
            say(line)
    spec = LOSSES[cfg.loss]
    if spec.needs_kl and cfg.z0 == "batch" and len(examples) < 2:
        raise DataError(f"{cfg.data}: {len(examples)} example(s): too few for one micro-batch (need at least 2)")

    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    acc = Accelerator(mixed_precision="bf16" if use_bf16 else "no", cpu=not torch.cuda.is_available())
    set_seed(cfg.seed)
    from .models import check_local, load_tokenizer

    if cfg.ref_model:
        check_local(cfg.ref_model)
    tok = load_tokenizer(cfg.model)  # the data checks need the tokenizer only: bad data fails before any model loads
    data = prepare_data(cfg, tok, examples, spec)
    for note in data.notes:
        say(note)
    n_d = sum(t.desirable for t in data.train)
    n_u = len(data.train) - n_d
    weights = auto_weights(n_d, n_u) if cfg.weights == "auto" else (cfg.desirable_weight, cfg.undesirable_weight)
    advice = band_advice(*weights, n_d, n_u) if "desirable_weight" in spec.hparams else None  # only losses with λ_D, λ_U
    if advice:
        warnings.warn(advice, stacklevel=1)
    say(f"train: {len(data.train)} examples ({n_d} desirable, {n_u} undesirable), held out: {len(data.eval)}; "
        f"λ_D={weights[0]:.4g} λ_U={weights[1]:.4g}" + (f"; {len(data.pairs)} training pairs" if spec.paired else ""))
    items = data.items(spec)

    world, rank = acc.num_processes, acc.process_index
    per_epoch = len(epoch_batches(len(items), cfg.batch_size, cfg.seed, 0)) // world // cfg.grad_accum
    if per_epoch == 0:
        raise DataError(f"{cfg.data}: {len(items)} training {'pairs' if spec.paired else 'examples'} are too few for one optimiser step "
                        f"(batch {cfg.batch_size} × accumulation {cfg.grad_accum} × {world} process(es))")
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * per_epoch))
    policy, ref, _ = build_policy(cfg, spec)
    head = ValueHead(policy.config.hidden_size) if spec.value_head else None  # PPO's critic, saved as value_head.pt

    params = [p for p in policy.parameters() if p.requires_grad] + (list(head.parameters()) if head else [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = get_scheduler("cosine" if cfg.scheduler == "cosine" else "constant_with_warmup", opt,
                          num_warmup_steps=math.ceil(cfg.warmup_ratio * total), num_training_steps=total)
    policy, opt = acc.prepare(policy, opt)
    if head is not None:
        head = acc.prepare(head)
    if ref is not None:  # (None: this loss needs no reference, and none was loaded)
        if ref.model is not None:
            ref.model.to(acc.device)
        else:  # LoRA: the policy itself, adapter disabled
            ref.policy = acc.unwrap_model(policy)
        ref.autocast = acc.autocast  # the policy's mixed precision (accelerate autocasts only what it prepares)
    state = LossState(spec, Z0(cfg.z0, cfg.z0_ema_decay), weights, value_head=head)

    def reduce(t):
        return acc.reduce(t, "sum") if world > 1 else t

    tmp = staging_dir(out) if acc.is_main_process else None
    try:
        if tmp:
            cfg.save(tmp / "config.yaml")
        held_out = data.items(spec, held_out=True)
        evals = {"start": evaluate(policy, ref, held_out, cfg, tok.pad_token_id, acc.device, reduce, weights, state)}
        stream = micro_batches(spec, items, cfg, tok.pad_token_id, world, rank)
        metrics_file = open(tmp / "metrics.jsonl", "w") if tmp else None
        bar = tqdm(total=total, desc=f"{cfg.loss} train", disable=not (cfg.progress and acc.is_main_process), unit="step")
        policy.train()
        for step in range(1, total + 1):
            t0 = time.perf_counter()
            stats = MicroStats()
            for k in range(cfg.grad_accum):
                epoch, batch = next(stream)
                batch = batch.to(acc.device)
                sync = acc.no_sync(policy) if k < cfg.grad_accum - 1 and world > 1 else contextlib.nullcontext()
                with sync:
                    loss, s, _ = micro_step(policy, ref, batch, cfg, state, reduce)
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
        evals["end"] = evaluate(policy, ref, held_out, cfg, tok.pad_token_id, acc.device, reduce, weights, state)
        acc.wait_for_everyone()
        if tmp:
            (tmp / "eval.json").write_text(json.dumps(evals, indent=2))
            model = acc.unwrap_model(policy)
            if cfg.lora_r > 0:
                model = model.merge_and_unload()
            model.save_pretrained(tmp / "model")
            tok.save_pretrained(tmp / "model")
            if head is not None:  # not part of the causal LM; kept for inspection or further PPO
                torch.save(acc.unwrap_model(head).state_dict(), tmp / "value_head.pt")
            from .report import write_report

            write_report(tmp, title=out.name)
            publish(tmp, out)
    except BaseException:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    if acc.is_main_process:
        for when, e in evals.items():
            if e:
                acc_text = "–" if e["reward_accuracy"] is None else f"{e['reward_accuracy']:.3f}"
                say(f"eval {when}: loss {e['loss']:.4f}, z0 {e['z0']:.4g}, reward accuracy {acc_text}")
        say(f"wrote {out}")
    return out


def _grad_norm(params) -> float:
    norms = [p.grad.detach().norm() for p in params if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0
