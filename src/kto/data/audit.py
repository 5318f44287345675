"""`kto data audit RUN`: after training, the examples the model finds hardest to fit,
as likely mislabels for a human to review.

Each training example gets its implied reward β·(log πθ(y|x) − log πref(y|x)) (SPEC.md §1),
with the policy from RUN/model and the reference rebuilt from RUN/config.yaml as training
built it. Its margin is measured from the reference point z0 (the clamped mean log-ratio
of mismatched pairs, here over the whole data set). A desirable example far below z0, or
an undesirable one far above, is on the wrong side: the saturation proposition (SPEC.md §5)
says KTO's gradient σ(βz)σ(−βz) vanishes there, so training stops correcting it, and a
wrong label is the usual reason. `suspicion` = −sign·(reward − β·z0); larger is worse.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import yaml

from ..errors import KTOError


@dataclass
class Scored:
    where: str
    desirable: bool
    reward: float  # β·(log πθ − log πref)
    margin: float  # reward − β·z0
    suspicion: float  # −sign·margin: > 0 means the wrong side of z0
    gradient_share: float  # σ(βz)σ(−βz) / (1/4): how much of KTO's largest gradient it still gets
    held_out: bool  # in the run's held-out prompts
    trained: bool  # in the run's training set (not held out, not left out by one-y-per-x, subsampling or SFT)
    prompt: object
    completion: object

    def row(self) -> dict:
        return asdict(self)


def load_run_config(run: Path):
    from ..config import TrainConfig

    path = run / "config.yaml"
    if not path.exists():
        raise KTOError(f"{run}: not a run folder (no config.yaml)")
    if not (run / "model").is_dir():
        raise KTOError(f"{run}: the run has no model/ folder (did training finish?)")
    values = yaml.safe_load(path.read_text()) or {}
    return TrainConfig(**values)


def reference_name(cfg) -> str:
    """What training used as the reference (train.build_policy): --ref-model if given, else
    the starting model (a frozen copy, or with LoRA the base with the adapter disabled)."""
    return cfg.ref_model or cfg.model


def training_split(cfg, examples: list) -> tuple[set[int], set[int]]:
    """The ids of the examples the run held out and of those it trained on, chosen as
    train.prepare_data chooses them (same functions, same seed, same order)."""
    from ..losses import LOSSES
    from ..train import one_y_per_x, split_by_prompt, subsample

    pool = one_y_per_x(examples, cfg.seed) if cfg.one_y_per_x else examples
    train_part, held = split_by_prompt(pool, cfg.eval_fraction, cfg.seed)
    if cfg.keep_desirable < 1 or cfg.keep_undesirable < 1:
        train_part = subsample(train_part, cfg.keep_desirable, cfg.keep_undesirable, cfg.seed)
    if LOSSES[cfg.loss].desirable_only:
        train_part = [e for e in train_part if e.desirable]
    held_prompts = {json.dumps(e.prompt, sort_keys=True) for e in held}
    held_ids = {id(e) for e in examples if json.dumps(e.prompt, sort_keys=True) in held_prompts}
    return held_ids, {id(e) for e in train_part}


@torch.no_grad()
def score_run(run: str | Path, data: str = "", batch_size: int = 0, device: str | None = None) -> tuple[list[Scored], float]:
    """Score every example of the run's data. Returns (scores, z0)."""
    from transformers import AutoModelForCausalLM

    from ..logprobs import model_logps
    from ..models import load_model, load_tokenizer
    from .batching import collate
    from .schema import load_examples
    from .tokenize import Encoder

    run = Path(run)
    cfg = load_run_config(run)
    if cfg.loss == "csft":
        raise KTOError(f"{run}: --loss csft conditions on control tokens; audit scores implied rewards of runs without them")
    path = data or cfg.data
    if not path:
        raise KTOError(f"{run}: config.yaml names no data file (training got examples in memory); pass --data FILE")
    examples, _ = load_examples(path, cfg.columns, cfg.data_split)
    held_ids, trained_ids = training_split(cfg, examples)
    tok = load_tokenizer(cfg.model)
    enc = Encoder(tok)
    tokenized = enc(examples, cfg.max_length, cfg.max_prompt_length)  # .index = position in `examples`

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        policy = AutoModelForCausalLM.from_pretrained(run / "model", dtype=torch.float32)
    except Exception as e:
        raise KTOError(f"{run / 'model'}: cannot load the trained model: {str(e).splitlines()[0]}") from None
    ref = load_model(reference_name(cfg), seed=cfg.seed)[0]
    policy.to(device).eval()
    ref.to(device).eval()

    bs = max(2, batch_size or cfg.batch_size)
    rewards, kl_sum, kl_n = [], 0.0, 0
    for i in range(0, len(tokenized), bs):
        chunk = tokenized[i: i + bs]
        batch = collate(chunk, tok.pad_token_id, cfg.max_length, with_kl=len(chunk) >= 2).to(device)
        logps = model_logps(policy, batch.input_ids, batch.attention_mask, batch.completion_mask)[0]
        ref_logps = model_logps(ref, batch.input_ids, batch.attention_mask, batch.completion_mask)[0]
        rewards.extend((cfg.beta * (logps - ref_logps)).tolist())
        if len(chunk) >= 2:
            kl = (model_logps(policy, batch.kl_input_ids, batch.kl_attention_mask, batch.kl_completion_mask)[0]
                  - model_logps(ref, batch.kl_input_ids, batch.kl_attention_mask, batch.kl_completion_mask)[0])
            kl_sum, kl_n = kl_sum + float(kl.sum()), kl_n + len(chunk)
    z0 = max(0.0, kl_sum / kl_n) if kl_n else 0.0  # clamp after the mean, as in training

    scores = []
    for t, reward in zip(tokenized, rewards):
        ex = examples[t.index]
        margin = reward - cfg.beta * z0
        sign = 1.0 if ex.desirable else -1.0
        s = sign * margin
        share = 4.0 / (1.0 + math.exp(-s)) / (1.0 + math.exp(s)) if abs(s) < 700 else 0.0
        scores.append(Scored(ex.where, ex.desirable, reward, margin, -s, share, id(ex) in held_ids, id(ex) in trained_ids,
                             ex.prompt, ex.completion))
    scores.sort(key=lambda r: r.suspicion, reverse=True)
    return scores, z0


def _preview(value, width: int) -> str:
    text = "".join(m["content"] for m in value) if isinstance(value, list) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def format_audit(scores: list[Scored], z0: float, top: int) -> str:
    n_wrong = sum(s.suspicion > 0 for s in scores)
    lines = [f"{len(scores)} example(s) scored; z0 = {z0:.4g}; {n_wrong} on the wrong side of z0 "
             f"(desirable below, undesirable above). Most suspicious first:",
             f"{'rank':>4}  {'suspicion':>9}  {'label':<11}  {'reward':>8}  {'grad':>5}  where / completion"]
    for i, s in enumerate(scores[:top], start=1):
        label = "desirable" if s.desirable else "undesirable"
        held = " [held out]" if s.held_out else "" if s.trained else " [not trained on]"
        lines.append(f"{i:>4}  {s.suspicion:>9.4f}  {label:<11}  {s.reward:>8.4f}  {s.gradient_share:>5.2f}  "
                     f"{s.where}{held}  {_preview(s.completion, 60)!r}")
    return "\n".join(lines)
