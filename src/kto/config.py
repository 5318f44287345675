"""Typed training configuration: defaults here, a YAML file on top (--config), then
command-line flags on top of that. Every field's help text is the CLI help."""
from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import KTOError


def _f(default, help: str, **kw):
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    # data
    data: str = _f("", "training data: a .jsonl/.jsonl.gz/.json/.parquet/.csv file or a Hugging Face dataset name")
    data_split: str = _f("train", "split to read when --data is a Hugging Face dataset name")
    columns: dict = _f({}, "rename columns, ours=theirs, e.g. prompt=question,completion=answer,label=thumbs_up")
    eval_fraction: float = _f(0.05, "share of prompts held out for evaluation at the start and the end (0 to disable)")
    max_length: int = _f(512, "maximum tokens of prompt + completion")
    max_prompt_length: int = _f(256, "maximum prompt tokens kept (the end of the prompt) when an example is too long")
    # model
    model: str = _f("tiny", "policy to start from: a Hugging Face id, a local path, or a built-in name (tiny, smollm2-135m)")
    ref_model: str = _f("", "reference model path or id (default: a frozen copy of the starting policy)")
    lora_r: int = _f(0, "LoRA rank (0 = full fine-tuning); with LoRA the reference is the base with the adapter disabled")
    lora_alpha: int = _f(16, "LoRA alpha")
    # loss
    loss: str = _f("kto", "loss: kto, dpo, cdpo, ipo, slic, simpo, orpo, sft, csft, ppo, apo-zero, bco (docs/losses.md)")
    beta: float = _f(0.1, "β, the temperature on the log-ratio")
    desirable_weight: float = _f(1.0, "λ_D, the weight of desirable examples")
    undesirable_weight: float = _f(1.0, "λ_U, the weight of undesirable examples")
    weights: str = _f("manual", "'manual' uses the two weights above; 'auto' sets them from the class counts (band rule)")
    z0: str = _f("batch", "reference point: 'batch' (mismatched pairs in each micro-batch), 'ema' (running mean), 'zero'")
    z0_ema_decay: float = _f(0.9, "decay of the running mean when --z0 ema")
    one_y_per_x: bool = _f(False, "keep one completion per prompt (chosen with --seed): data without pairs")
    keep_desirable: float = _f(1.0, "share of desirable training examples kept (seeded), e.g. 0.1 for imbalance studies")
    keep_undesirable: float = _f(1.0, "share of undesirable training examples kept (seeded)")
    # other losses' hyper-parameters (defaults and reasons: docs/losses.md)
    label_smoothing: float = _f(0.2, "cDPO ε, the assumed share of flipped preference labels")
    ipo_tau: float = _f(0.1, "IPO τ (target margin 1/(2τ) of per-token-mean log-ratios)")
    slic_delta: float = _f(1.0, "SLiC margin δ on summed log-probs")
    slic_lambda: float = _f(0.1, "SLiC weight λ of the NLL regulariser on chosen completions")
    simpo_beta: float = _f(2.0, "SimPO β (on per-token-mean log-probs)")
    simpo_gamma: float = _f(0.5, "SimPO target margin γ")
    orpo_lambda: float = _f(0.25, "ORPO weight λ of the odds-ratio term")
    ppo_clip: float = _f(0.25, "offline PPO: the ratio πθ/πref is clipped to [c, 1/c]")
    ppo_value_coef: float = _f(0.01, "offline PPO: weight of the value-head loss")
    ppo_kl_coef: float = _f(0.1, "offline PPO: weight of the ½(log πθ/πref)² penalty")
    # optimisation
    lr: float = _f(5e-6, "AdamW learning rate")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    warmup_ratio: float = _f(0.1, "share of the optimiser steps spent in linear warmup")
    scheduler: str = _f("constant", "learning-rate schedule after warmup: constant or cosine")
    batch_size: int = _f(8, "micro-batch size per process (at least 2 for the KL estimate); counts pairs for paired losses")
    grad_accum: int = _f(1, "micro-batches accumulated per optimiser step")
    max_grad_norm: float = _f(1.0, "gradient clipping norm (0 disables)")
    epochs: float = _f(1.0, "passes over the training data (ignored when --max-steps is set)")
    max_steps: int = _f(0, "optimiser steps to run (0: from --epochs)")
    seed: int = _f(0, "seed for model init (tiny), shuffling and the eval split")
    precision: str = _f("auto", "auto (bf16 on a GPU that supports it, else fp32), fp32 or bf16")
    # output
    output: str = _f("", "output folder (must be new or empty unless --overwrite)")
    overwrite: bool = _f(False, "replace an existing output folder (only once the run has finished)")
    logging_steps: int = _f(1, "log metrics every N optimiser steps")
    progress: bool = _f(True, "show a progress bar")

    def __post_init__(self):
        checks = [
            (self.beta > 0, "beta must be > 0"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.grad_accum >= 1, "grad_accum must be >= 1"),
            (0 <= self.eval_fraction < 1, "eval_fraction must be in [0, 1)"),
            (0 < self.max_prompt_length < self.max_length, "max_prompt_length must be > 0 and smaller than max_length"),
            (self.weights in ("manual", "auto"), "weights must be 'manual' or 'auto'"),
            (self.z0 in ("batch", "ema", "zero"), "z0 must be batch, ema or zero"),
            (self.scheduler in ("constant", "cosine"), "scheduler must be constant or cosine"),
            (self.precision in ("auto", "fp32", "bf16"), "precision must be auto, fp32 or bf16"),
            (self.desirable_weight > 0 and self.undesirable_weight > 0, "class weights must be > 0"),
            (self.max_steps >= 0 and self.epochs > 0, "max_steps must be >= 0 and epochs > 0"),
            (self.lr > 0 and self.weight_decay >= 0, "lr must be > 0 and weight_decay >= 0"),
            (0 <= self.warmup_ratio <= 1, "warmup_ratio must be in [0, 1]"),
            (self.max_grad_norm >= 0, "max_grad_norm must be >= 0 (0 disables clipping)"),
            (self.logging_steps >= 1, "logging_steps must be >= 1"),
            (self.lora_r >= 0 and self.lora_alpha > 0, "lora_r must be >= 0 (0: no LoRA) and lora_alpha > 0"),
            (0 < self.z0_ema_decay < 1, "z0_ema_decay must be in (0, 1)"),
        ]
        from .losses import LOSSES

        spec = LOSSES.get(self.loss)
        checks += [
            (spec is not None, f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}"),
            (0 < self.keep_desirable <= 1 and 0 < self.keep_undesirable <= 1, "keep_desirable/keep_undesirable must be in (0, 1]"),
            (0 <= self.label_smoothing < 0.5, "label_smoothing must be in [0, 0.5)"),
            (self.ipo_tau > 0 and self.simpo_beta > 0, "ipo_tau and simpo_beta must be > 0"),
            (self.slic_lambda >= 0 and self.orpo_lambda >= 0, "slic_lambda and orpo_lambda must be >= 0"),
            (0 < self.ppo_clip < 1, "ppo_clip must be in (0, 1)"),
            (self.ppo_value_coef >= 0 and self.ppo_kl_coef >= 0, "ppo coefficients must be >= 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise KTOError(f"config: {msg}")
        if spec.paired and (self.one_y_per_x or self.keep_desirable < 1 or self.keep_undesirable < 1):
            raise KTOError(f"config: --loss {self.loss} trains on pairs; --one-y-per-x and --keep-desirable/"
                           "--keep-undesirable would break the pairs (use an unpaired loss such as kto)")
        if spec.needs_kl and self.z0 == "batch" and self.batch_size < 2:
            raise KTOError("config: --batch-size 1 cannot form mismatched pairs for z0 (nobody may be paired with "
                           "their own completion); use --batch-size 2 or more, or --z0 ema")

    def save(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(dataclasses.asdict(self), sort_keys=False))


def parse_columns(text: str) -> dict:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        ours, eq, theirs = part.partition("=")
        if not eq or not ours or not theirs:
            raise KTOError(f"--columns: expected ours=theirs, got {part!r}")
        out[ours.strip()] = theirs.strip()
    return out


def _columns_flag(text: str) -> dict:
    try:
        return parse_columns(text)
    except KTOError as e:  # argparse turns this into its one-line usage error
        raise argparse.ArgumentTypeError(str(e).removeprefix("--columns: ")) from None


def coerce(name: str, kind, value, where: str):
    """A YAML value as the field's type: YAML reads 1e-4 as text, and a user may write
    `max_steps: 10.0` or `columns: prompt=question`. Anything else is one error line."""
    if value is None or isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    try:
        if kind is bool:
            if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "on", "off"):
                return value.strip().lower() in ("true", "yes", "on")
            raise ValueError
        if kind is dict:
            if isinstance(value, str):
                return parse_columns(value)
            raise ValueError
        if kind is int:
            f = float(value)
            if f != int(f):
                raise ValueError
            return int(f)
        return kind(value)
    except (ValueError, TypeError, KTOError):
        raise KTOError(f"{where}: {name}: expected {kind.__name__}, got {value!r}") from None


def add_config_args(parser: argparse.ArgumentParser, cls=TrainConfig) -> None:
    """One flag per field (--max-steps for max_steps); defaults suppressed so that only
    flags actually given override the YAML file."""
    parser.add_argument("--config", help="YAML file with any of the options below (flags override it)")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help = f"{f.metadata.get('help', '')} (default: {default!r})"
        if kind is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help)
        elif kind is dict:
            parser.add_argument(flag, dest=f.name, type=_columns_flag, default=argparse.SUPPRESS, help=help)
        else:
            parser.add_argument(flag, dest=f.name, type=kind, default=argparse.SUPPRESS, help=help)


def read_config_file(path: str, cls=TrainConfig) -> dict:
    """The options of a YAML config file, each as its field's type; one error line otherwise."""
    try:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as e:
        raise KTOError(f"{path}: cannot read config ({e.strerror})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f":{mark.line + 1}" if mark else ""
        raise KTOError(f"{path}{at}: not valid YAML ({getattr(e, 'problem', None) or type(e).__name__})") from None
    if not isinstance(loaded, dict):
        raise KTOError(f"{path}: expected a mapping of option: value, got {type(loaded).__name__}")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(loaded) - set(hints))
    if unknown:
        raise KTOError(f"{path}: unknown option(s) {', '.join(map(str, unknown))}")
    return {k: coerce(k, hints[k], v, path) for k, v in loaded.items()}


def config_from_args(args: argparse.Namespace, cls=TrainConfig, defaults: dict | None = None):
    """Field defaults, then `defaults` (a preset such as `kto demo --tiny`), then the YAML
    file (--config), then the flags given on the command line."""
    values = dict(defaults or {})
    if getattr(args, "config", None):
        values.update(read_config_file(args.config, cls))
    values.update({f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)})
    return cls(**values)
