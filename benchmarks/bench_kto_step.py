"""Side-by-side speed and memory of one KTO optimiser step: ours (`kto.train.train`) against
the peer, Hugging Face TRL's `KTOTrainer`, in one run.

Both sides get the same Llama-architecture model (weights saved once to a temporary folder
and loaded by each), the same tokenizer, the same examples in the same micro-batches, the
same batch size, max length, β, class weights, learning rate, optimiser (torch AdamW, no
weight decay, clipping at 1.0, constant schedule, no warm-up), fp32 on the CPU, no
gradient checkpointing, no evaluation, no saving, metrics every step, reference
log-probs computed on the fly. TRL's defaults that differ from ours (gradient
checkpointing on, bf16 on, lr 1e-6, logging every 10 steps, fused AdamW) are overridden
explicitly in `trl_worker`.

Each side runs in a child process of its own (so that its peak memory is its own), and the
sides alternate: round 1 runs ours then TRL, round 2 TRL then ours, and so on.

Measured per step: the wall time between the ends of consecutive optimiser steps (the
whole loop: batch collation, forwards, backward, clipping, optimiser, logging). Ours is
stamped where the loop advances its progress bar, TRL's by a `TrainerCallback.on_step_end`.
Ours also reports its own in-loop timer (metrics.jsonl "seconds"). Also measured: the
process CPU time per step (all threads), which other processes on a shared machine disturb
less than wall time. Peak memory is the peak resident set size (Linux VmHWM), reset through
/proc/self/clear_refs just before the side loads its model (so it covers model loading,
data preparation and the steps) and again after the warm-up (the timed steps alone); plus
`resource.getrusage(...).ru_maxrss` for the whole child process. No tracemalloc.

Usage:  python benchmarks/bench_kto_step.py [--steps 10 --warmup 3 --batch-size 8 --max-length 256 ...]
Writes: benchmarks/results/kto_step_<UTC time>.json (and prints a table).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = str(HERE.parent.parent / "shared" / "data" / "hh-rlhf" / "harmless-base-test.jsonl.gz")  # ../shared/data
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# ----------------------------------------------------------------------------- memory helpers

def _status_kb(field: str) -> int | None:
    try:
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset VmHWM (the peak RSS) to the current RSS; Linux ≥ 4.0. False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_mark() -> dict:
    return {"rss_mb": (_status_kb("VmRSS") or 0) / 1024, "hwm_mb": (_status_kb("VmHWM") or 0) / 1024}


def ru_maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ----------------------------------------------------------------------------- data (parent)

def _cut_tail(text: str, n_bytes: int) -> str:
    return text.encode()[-n_bytes:].decode(errors="ignore") if n_bytes > 0 else ""


def _cut_head(text: str, n_bytes: int) -> str:
    return text.encode()[:n_bytes].decode(errors="ignore") if n_bytes > 0 else ""


def prepare_subset(path: str, n: int, max_length: int, max_prompt_length: int, tokenizer) -> list[dict]:
    """The first `n` unpaired examples of the file, cut beforehand so that neither side has to
    truncate: [BOS] + prompt tail (max_prompt_length tokens with BOS) + completion head + [EOS]
    fits in max_length. The two libraries truncate differently (TRL 1.16 cuts the end of the
    whole sequence and has no max_prompt_length; we keep the end of the prompt), so cutting in
    advance is what makes both see exactly the same tokens. The tokenizer is byte-level (one
    token per UTF-8 byte), so the cut is by bytes; the result is checked with our encoder."""
    from kto.data.schema import load_examples
    from kto.data.tokenize import Encoder

    examples, _ = load_examples(path)
    rows = []
    for e in examples:
        if len(rows) == n:
            break
        if not isinstance(e.prompt, str) or not isinstance(e.completion, str):
            continue
        prompt = _cut_tail(e.prompt, max_prompt_length - 1)  # BOS is added by the tokenizer
        budget = max_length - 1 - len(prompt.encode()) - 1   # BOS, EOS
        completion = _cut_head(e.completion, budget)
        if not completion.strip():
            continue
        rows.append({"prompt": prompt, "completion": completion, "label": bool(e.desirable),
                     "where": e.where, "pair_id": e.pair_id})
    from kto.data.records import Example

    enc = Encoder(tokenizer)
    for r in rows:
        p, c = enc.encode(Example(r["prompt"], r["completion"], r["label"], r["where"]))
        if len(p) + len(c) > max_length or len(p) > max_prompt_length:
            raise SystemExit(f"internal error: {r['where']} is {len(p)}+{len(c)} tokens after cutting; "
                             "this benchmark expects a byte-level tokenizer")
        r["n_tokens"] = len(p) + len(c)
    return rows


# ----------------------------------------------------------------------------- workers (children)

class Stamps:
    """End-of-step marks: wall clock and this process's CPU time (all threads). At the end of
    the last warm-up step the peak RSS so far is kept and the peak is reset, so that the
    final peak covers the timed steps only."""

    def __init__(self, warmup: int):
        self.warmup, self.wall, self.cpu = warmup, [], []
        self.peak_to_warmup_mb = None
        self.steady_reset = False

    def mark(self):
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())
        if len(self.wall) == self.warmup:
            self.peak_to_warmup_mb = memory_mark()["hwm_mb"]
            self.steady_reset = reset_peak_rss()


def _common_setup(spec: dict):
    """Threads, and the imports both sides need, done before any memory is measured (ours
    imports accelerate and the model classes lazily inside `train`, TRL at import time)."""
    import torch

    torch.set_num_threads(spec["threads"])
    import accelerate  # noqa: F401
    import tqdm.auto  # noqa: F401
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM, get_scheduler  # noqa: F401
    from transformers.models.llama import modeling_llama  # noqa: F401

    return torch


def _finish(side: str, stamps: Stamps, before: dict, reset_ok: bool, t0: float, torch, **extra) -> dict:
    end = memory_mark()
    steady = end["hwm_mb"] if stamps.steady_reset else None
    overall = None
    if reset_ok and stamps.peak_to_warmup_mb is not None:
        overall = max(stamps.peak_to_warmup_mb, end["hwm_mb"])
    return {"side": side, "stamps": stamps.wall, "cpu_stamps": stamps.cpu, "wall_s": time.perf_counter() - t0,
            "rss_before_mb": before["rss_mb"], "peak_rss_mb": overall, "peak_rss_steady_mb": steady,
            "ru_maxrss_mb": ru_maxrss_mb(), "threads": torch.get_num_threads(), **extra}


def ours_worker(spec: dict) -> dict:
    torch = _common_setup(spec)
    import tqdm.auto

    from kto.config import TrainConfig
    from kto.data.records import Example
    from kto.train import train

    rows = json.loads(Path(spec["data"]).read_text())
    examples = [Example(r["prompt"], r["completion"], r["label"], r["where"], r["pair_id"]) for r in rows]
    stamps = Stamps(spec["warmup"])
    real = tqdm.auto.tqdm

    class StampedBar(real):  # the loop advances its "<loss> train" bar once per optimiser step
        def __init__(self, *args, **kw):
            self._stamp = str(kw.get("desc", "")).endswith(" train")
            super().__init__(*args, **kw)

        def update(self, n=1):
            if self._stamp:
                stamps.mark()
            return super().update(n)

    out = Path(spec["workdir"]) / "ours"
    cfg = TrainConfig(
        model=spec["model_dir"], loss="kto", beta=spec["beta"], desirable_weight=1.0, undesirable_weight=1.0,
        weights="manual", z0="batch", eval_fraction=0.0, max_length=spec["max_length"],
        max_prompt_length=spec["max_prompt_length"], lr=spec["lr"], weight_decay=0.0, warmup_ratio=0.0,
        scheduler="constant", batch_size=spec["batch_size"], grad_accum=1, max_grad_norm=1.0,
        max_steps=spec["warmup"] + spec["steps"], seed=0, precision="fp32", output=str(out), overwrite=True,
        logging_steps=1, progress=False,
    )
    before = memory_mark()
    reset_ok = reset_peak_rss()
    tqdm.auto.tqdm = StampedBar  # `train` imports tqdm.auto's tqdm when called
    t0 = time.perf_counter()
    try:
        train(cfg, examples)
    finally:
        tqdm.auto.tqdm = real
    result = _finish("ours", stamps, before, reset_ok, t0, torch)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    result.update({
        "loop_seconds": [m["seconds"] for m in metrics],
        "tokens_model": [round(m["tokens_per_sec"] * m["seconds"]) for m in metrics],  # main + KL rows, no padding
        "loss": [m["loss"] for m in metrics], "z0": [m["z0"] for m in metrics],
    })
    return result


def trl_worker(spec: dict) -> dict:
    torch = _common_setup(spec)
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import KTOConfig, KTOTrainer

    rows = json.loads(Path(spec["data"]).read_text())
    order = [i for batch in spec["batches"] for i in batch]  # our loop's micro-batches, in its order
    stamps = Stamps(spec["warmup"])
    losses: list[float] = []
    tokens_main: list[int] = []

    class Stamp(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            stamps.mark()

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "num_tokens" in logs:
                tokens_main.append(int(logs["num_tokens"]))

    class Recorded(KTOTrainer):  # keeps each step's loss at full precision (the log rounds it)
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if model.training:
                losses.append(float((out[0] if return_outputs else out).detach()))
            return out

    before = memory_mark()
    reset_ok = reset_peak_rss()
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(spec["model_dir"])
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=torch.float32)
    data = Dataset.from_list([{"prompt": rows[i]["prompt"], "completion": rows[i]["completion"],
                               "label": rows[i]["label"]} for i in order])
    args = KTOConfig(
        output_dir=str(Path(spec["workdir"]) / "trl"),
        # the same settings as ours, each set explicitly (several TRL defaults differ)
        per_device_train_batch_size=spec["batch_size"], gradient_accumulation_steps=1,
        max_steps=spec["warmup"] + spec["steps"], learning_rate=spec["lr"], lr_scheduler_type="constant",
        warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, optim="adamw_torch",
        beta=spec["beta"], desirable_weight=1.0, undesirable_weight=1.0, loss_type="kto",
        max_length=spec["max_length"], precompute_ref_log_probs=False,
        gradient_checkpointing=False, bf16=False, fp16=False, use_cpu=True,
        train_sampling_strategy="sequential", dataloader_num_workers=0,
        logging_steps=1, eval_strategy="no", save_strategy="no", report_to="none", disable_tqdm=True, seed=0,
    )
    trainer = Recorded(model=model, args=args, train_dataset=data, processing_class=tok, callbacks=[Stamp()])
    trainer.remove_callback(PrinterCallback)
    # The tokens TRL will train on, to check that both sides see the same sequences.
    ds = trainer.train_dataset
    trl_ids = [list(p) + list(c) for p, c in zip(ds["prompt_ids"], ds["completion_ids"])]
    trainer.train()
    return _finish("trl", stamps, before, reset_ok, t0, torch, loss=losses, tokens_main_cumulative=tokens_main,
                   sequences=trl_ids, settings={k: getattr(args, k) for k in (
                       "per_device_train_batch_size", "learning_rate", "lr_scheduler_type", "optim", "max_length",
                       "beta", "gradient_checkpointing", "bf16", "use_cpu", "logging_steps",
                       "precompute_ref_log_probs", "train_sampling_strategy", "max_grad_norm", "weight_decay")})


def worker_main(side: str, spec_path: str, result_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    result = (ours_worker if side == "ours" else trl_worker)(spec)
    Path(result_path).write_text(json.dumps(result, default=str))


# ----------------------------------------------------------------------------- parent

def run_side(side: str, spec_path: Path, workdir: Path, round_no: int, log_dir: Path) -> dict:
    res = workdir / f"{side}-{round_no}.json"
    log = log_dir / f"{side}-{round_no}.log"
    load = os.getloadavg()
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run([sys.executable, __file__, "--worker", side, str(spec_path), str(res)],
                              stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = log.read_text()[-4000:]
        raise SystemExit(f"{side} (round {round_no}) failed with exit code {proc.returncode}; log {log}:\n{tail}")
    out = json.loads(res.read_text())
    out["round"] = round_no
    out["child_s"] = time.perf_counter() - t0
    out["loadavg_before"] = load
    out["loadavg_after"] = os.getloadavg()
    return out


def intervals(stamps: list[float], warmup: int) -> list[float]:
    """Seconds of each timed step: end of step k minus end of step k−1, for k > warmup."""
    return [b - a for a, b in zip(stamps[warmup - 1:], stamps[warmup:])]


def _fmt(x, nd=3):
    return "–" if x is None else f"{x:.{nd}f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10, help="timed optimiser steps per run (default 10)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3, at least 1)")
    ap.add_argument("--batch-size", type=int, default=8, help="micro-batch size, both sides (default 8, at least 2)")
    ap.add_argument("--max-length", type=int, default=256, help="tokens of prompt + completion (default 256)")
    ap.add_argument("--max-prompt-length", type=int, default=128, help="prompt tokens kept (default 128)")
    ap.add_argument("--examples", type=int, default=512, help="unpaired examples in the fixed subset (default 512)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds; each round runs both sides (default 2)")
    ap.add_argument("--hidden", type=int, default=256, help="model hidden size (default 256)")
    ap.add_argument("--layers", type=int, default=4, help="model layers (default 4)")
    ap.add_argument("--vocab-size", type=int, default=0,
                    help="model vocabulary (output rows); default: the byte tokenizer's 260. A larger value "
                         "(e.g. 49152, SmolLM2's) makes the LM head and the log-softmax realistic; the extra rows are never a label")
    ap.add_argument("--lr", type=float, default=5e-6, help="learning rate, both sides (default 5e-6)")
    ap.add_argument("--beta", type=float, default=0.1, help="β, both sides (default 0.1)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads per side (default: torch's default)")
    ap.add_argument("--data", default=DEFAULT_DATA, help=f"HH-style data file (default {DEFAULT_DATA})")
    ap.add_argument("--results", default=str(HERE / "results"), help="folder for the JSON result")
    ap.add_argument("--worker", nargs=3, metavar=("SIDE", "SPEC", "RESULT"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        worker_main(*a.worker)
        return 0

    if not Path(a.data).exists():
        print(f"bench_kto_step: skipped: data file {a.data} not found (pass --data PATH to an HH-RLHF "
              "jsonl/jsonl.gz file)")
        return 0
    try:
        import trl  # noqa: F401
    except ImportError:
        print("bench_kto_step: the peer is missing: pip install trl (`make bench` installs it)")
        return 2
    if a.batch_size < 2 or a.warmup < 1 or a.steps < 1 or a.rounds < 1:
        ap.error("--batch-size must be >= 2, --warmup >= 1, --steps >= 1, --rounds >= 1")
    if not 0 < a.max_prompt_length < a.max_length:
        ap.error("--max-prompt-length must be > 0 and smaller than --max-length")

    import torch
    import transformers

    from kto.data.batching import epoch_batches
    from kto.models import tiny_model, tiny_tokenizer

    threads = a.threads or torch.get_num_threads()
    total_steps = a.warmup + a.steps
    results_dir = Path(a.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    print(f"bench_kto_step: ours (kto.train.train) vs TRL {trl.__version__} KTOTrainer — "
          f"{a.rounds} alternating round(s), {a.warmup} warm-up + {a.steps} timed steps each, batch {a.batch_size}, "
          f"max length {a.max_length}, fp32 CPU, {threads} thread(s), {os.cpu_count()} cores. Load average now "
          f"{os.getloadavg()[0]:.2f} (this machine is shared; other processes add noise).", flush=True)

    with tempfile.TemporaryDirectory(prefix="kto-bench-") as tmp:
        workdir = Path(tmp)
        model_dir = workdir / "model"
        tok = tiny_tokenizer()
        model = tiny_model(max(len(tok), a.vocab_size), seed=0, hidden=a.hidden, layers=a.layers)
        n_params = sum(p.numel() for p in model.parameters())
        model.save_pretrained(model_dir)
        tok.save_pretrained(model_dir)
        del model
        rows = prepare_subset(a.data, a.examples, a.max_length, a.max_prompt_length, tok)
        if len(rows) < a.batch_size * total_steps:
            raise SystemExit(f"only {len(rows)} examples for {total_steps} steps of {a.batch_size}; lower the steps")
        # The micro-batches our loop will draw (epoch 0, seed 0, no held-out split); TRL gets the
        # examples in this order with its sequential sampler, so step k holds the same examples on both sides.
        batches = epoch_batches(len(rows), a.batch_size, 0, 0)[:total_steps]
        data_path = workdir / "data.json"
        data_path.write_text(json.dumps(rows))
        spec = {"model_dir": str(model_dir), "data": str(data_path), "workdir": str(workdir), "batches": batches,
                "steps": a.steps, "warmup": a.warmup, "batch_size": a.batch_size, "max_length": a.max_length,
                "max_prompt_length": a.max_prompt_length, "lr": a.lr, "beta": a.beta, "threads": threads}
        spec_path = workdir / "spec.json"
        spec_path.write_text(json.dumps(spec))
        tokens_per_step = [2 * sum(rows[i]["n_tokens"] for i in b) for b in batches]  # main + KL rows, no padding

        runs = []
        for r in range(1, a.rounds + 1):
            for side in (("ours", "trl") if r % 2 else ("trl", "ours")):
                print(f"  round {r}: {side} ...", end="", flush=True)
                out = run_side(side, spec_path, workdir, r, workdir)
                iv = intervals(out["stamps"], a.warmup)
                print(f" {statistics.median(iv):.3f} s/step (median of {len(iv)}), child {out['child_s']:.1f} s, "
                      f"load {out['loadavg_before'][0]:.2f}→{out['loadavg_after'][0]:.2f}", flush=True)
                runs.append(out)

    # ---- checks: same tokens, same batches, both compute KTO
    ours_runs = [x for x in runs if x["side"] == "ours"]
    trl_runs = [x for x in runs if x["side"] == "trl"]
    order = [i for b in batches for i in b]
    from kto.data.records import Example
    from kto.data.tokenize import Encoder

    enc = Encoder(tok)
    enc_seq = []
    for i in order:
        p, c = enc.encode(Example(rows[i]["prompt"], rows[i]["completion"], rows[i]["label"]))
        enc_seq.append(p + c)
    trl_seq = trl_runs[0]["sequences"][: len(order)]
    same_tokens = trl_seq == enc_seq
    ours_tokens = ours_runs[0]["tokens_model"][:total_steps]
    trl_cum = trl_runs[0]["tokens_main_cumulative"][:total_steps]
    trl_main = [b - a for a, b in zip([0] + trl_cum[:-1], trl_cum)]
    same_batches = ours_tokens == tokens_per_step and [2 * t for t in trl_main] == tokens_per_step
    loss1 = {"ours": ours_runs[0]["loss"][0], "trl": trl_runs[0]["loss"][0]}
    loss_ok = all(abs(v - 0.5) < 1e-6 for v in loss1.values())
    later = [abs(o - t) for o, t in zip(ours_runs[0]["loss"], trl_runs[0]["loss"])]

    # ---- timing and memory
    def side_stats(rs):
        per_step = [intervals(x["stamps"], a.warmup) for x in rs]
        pooled = [v for s in per_step for v in s]
        timed_tokens = tokens_per_step[a.warmup:total_steps]
        tok_s = sum(timed_tokens) * len(rs) / sum(pooled)
        cpu = [v for x in rs for v in intervals(x["cpu_stamps"], a.warmup)]

        def med(key, base=None):
            vals = [x[key] - (x[base] if base else 0) for x in rs if x[key] is not None]
            return statistics.median(vals) if vals else None

        return {
            "sec_per_step_median": statistics.median(pooled), "sec_per_step_mean": statistics.fmean(pooled),
            "sec_per_step_min_run_mean": min(statistics.fmean(s) for s in per_step),
            "cpu_sec_per_step_median": statistics.median(cpu),
            "tokens_per_sec": tok_s, "per_step": per_step,
            "peak_rss_mb": med("peak_rss_mb"), "peak_rss_growth_mb": med("peak_rss_mb", "rss_before_mb"),
            "peak_rss_steady_mb": med("peak_rss_steady_mb"),
            "ru_maxrss_mb": statistics.median(x["ru_maxrss_mb"] for x in rs),
            "rss_before_mb": statistics.median(x["rss_before_mb"] for x in rs),
        }

    so, st = side_stats(ours_runs), side_stats(trl_runs)
    if any(x.get("loop_seconds") for x in ours_runs):
        so["loop_seconds_median"] = statistics.median(v for x in ours_runs for v in x["loop_seconds"][a.warmup:])
    paired = [o / t for ro, rt in zip(so["per_step"], st["per_step"]) for o, t in zip(ro, rt)]

    def ratio(k):
        return None if so[k] is None or st[k] is None else so[k] / st[k]

    ratios = {
        "sec_per_step_median": ratio("sec_per_step_median"),
        "sec_per_step_mean": ratio("sec_per_step_mean"),
        "sec_per_step_same_batch_median": statistics.median(paired),
        "cpu_sec_per_step_median": ratio("cpu_sec_per_step_median"),
        "tokens_per_sec": ratio("tokens_per_sec"),
        "peak_rss_mb": ratio("peak_rss_mb"),
        "peak_rss_growth_mb": ratio("peak_rss_growth_mb"),
        "peak_rss_steady_mb": ratio("peak_rss_steady_mb"),
        "ru_maxrss_mb": ratio("ru_maxrss_mb"),
    }

    rows_out = [
        ("seconds / optimiser step, median", "sec_per_step_median", 3),
        ("seconds / optimiser step, mean", "sec_per_step_mean", 3),
        ("CPU seconds / step (all threads), median", "cpu_sec_per_step_median", 3),
        ("tokens / second (main + KL rows)", "tokens_per_sec", 0),
        ("peak RSS, model load → last step (MB)", "peak_rss_mb", 0),
        ("  growth over RSS after imports (MB)", "peak_rss_growth_mb", 0),
        ("peak RSS during the timed steps (MB)", "peak_rss_steady_mb", 0),
        ("peak RSS, whole child (ru_maxrss, MB)", "ru_maxrss_mb", 0),
    ]
    print()
    print(f"{'':42s} {'ours':>10s} {'TRL':>10s} {'ours/TRL':>9s}")
    for label, k, nd in rows_out:
        print(f"{label:42s} {_fmt(so[k], nd):>10s} {_fmt(st[k], nd):>10s} {_fmt(ratios[k], 2):>9s}")
    print(f"{'same-batch step time ratio, median':42s} {'':>10s} {'':>10s} {_fmt(ratios['sec_per_step_same_batch_median'], 2):>9s}")
    if "loop_seconds_median" in so:
        print(f"(ours' own in-loop timer, metrics.jsonl 'seconds': median {so['loop_seconds_median']:.3f} s/step)")
    print(f"\nfirst-step loss (policy = reference, so 0.5 expected): ours {loss1['ours']:.6f}, TRL {loss1['trl']:.6f} "
          f"-> {'OK' if loss_ok else 'MISMATCH'}; max |ours − TRL| over the {len(later)} steps: {max(later):.2e} "
          "(later steps may differ slightly: TRL pairs each prompt with the previous completion for z0, we with the next)")
    print(f"same token sequences on both sides: {same_tokens}; same tokens in every step's batch: {same_batches}")
    print(f"model: Llama, hidden {a.hidden}, {a.layers} layers, {n_params / 1e6:.2f}M parameters, vocab {max(len(tok), a.vocab_size)} "
          f"(byte-level tokenizer, {len(tok)} tokens); "
          f"{len(rows)} examples from {a.data}; {statistics.fmean(tokens_per_step):.0f} tokens per step (main + KL rows)")
    print("Note: the machine is shared; other processes add noise (load averages are in the JSON). "
          "Rerun, or raise --steps/--rounds, before trusting a difference under ~10%.")

    result = {
        "benchmark": "kto_step", "time_utc": stamp,
        "command": " ".join([Path(sys.executable).name, "benchmarks/bench_kto_step.py"] + (argv if argv is not None else sys.argv[1:])),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__,
                    "torch_threads": threads},
        "settings": {**{k: v for k, v in vars(a).items() if k not in ("worker",)}, "params": n_params,
                     "vocab": max(len(tok), a.vocab_size), "tokens_per_step": tokens_per_step, "trl_settings": trl_runs[0]["settings"]},
        "memory_method": "peak RSS = /proc/self/status VmHWM, reset via /proc/self/clear_refs just before each side "
                         "loads its model (peak_rss_mb, growth over the RSS after imports) and again at the end of "
                         "the warm-up steps (peak_rss_steady_mb); ru_maxrss = resource.getrusage peak of the whole "
                         "child process; no tracemalloc",
        "ours": {k: v for k, v in so.items()}, "trl": {k: v for k, v in st.items()}, "ratios_ours_over_trl": ratios,
        "checks": {"first_step_loss": loss1, "first_step_loss_is_half": loss_ok, "max_abs_loss_diff": max(later),
                   "loss_ours": ours_runs[0]["loss"], "loss_trl": trl_runs[0]["loss"],
                   "same_token_sequences": same_tokens, "same_batches": same_batches},
        "runs": [{k: v for k, v in x.items() if k != "sequences"} for x in runs],
    }
    path = results_dir / f"kto_step_{stamp}.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
