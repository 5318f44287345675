"""`kto data validate`: list every problem in a data file, one line each, before any
model is loaded. The same reader and row checks run at the start of `kto train`.

Strict and lenient, on purpose:
  - `kto train` stops at the first bad row, except for paired rows whose two prompts
    differ or whose reply is empty (a few in HH-RLHF): those are dropped with a warning
    that names every dropped row, because the rest of the file is usable as it is.
  - `kto data validate` reads the whole file, reports every bad row including those
    pairs, and exits non-zero if there is any; warnings (one class only, imbalance,
    truncation) do not change the exit status.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import DataError, KTOError
from .readers import read_rows
from .records import Example, LoadReport
from .schema import rows_to_examples


@dataclass
class Checked:
    """What reading a file found: the good examples and every problem, in file order."""

    path: str
    examples: list[Example] = field(default_factory=list)
    report: LoadReport = field(default_factory=LoadReport)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_file(path: str, columns: dict | None = None, split: str = "train", strict: bool = True) -> Checked:
    """Read all of `path`, collecting bad lines and rows instead of stopping at the first.
    Problems that spoil the whole file (missing, not gzip, no schema) end the reading."""
    out = Checked(path)

    def collect(err: DataError) -> None:
        out.errors.append(str(err))

    try:
        rows = read_rows(path, split, on_error=collect)
        out.examples = list(rows_to_examples(rows, columns, out.report, on_error=collect, strict=strict))
    except DataError as e:
        out.errors.append(str(e))
        return out
    if out.report.rows == 0 and not out.errors:
        out.errors.append(f"{path}: no rows")
    return out


def check_training(checked: Checked, cfg, tokenizer) -> None:
    """The checks `kto train` makes after reading: enough examples, something left after
    truncation, enough for one optimiser step, class balance. Adds to checked.errors/warnings."""
    from ..losses import LOSSES
    from ..train import add_control_vocab, check_output, prepare_data, split_by_prompt
    from ..weights import band_advice
    from .batching import epoch_batches

    if cfg.output:
        try:
            check_output(cfg.output, cfg.overwrite)
        except KTOError as e:
            checked.errors.append(str(e))
    path, examples = checked.path, checked.examples
    if not examples:
        if checked.report.rows and not checked.errors:
            checked.errors.append(f"{path}: no usable examples in {checked.report.rows} row(s)")
        return
    if len(examples) < 2:
        checked.errors.append(f"{path}: {len(examples)} example(s): too few for one micro-batch (need at least 2)")
        return
    train_part, _ = split_by_prompt(examples, cfg.eval_fraction, cfg.seed)
    if not train_part:
        prompts = len({repr(e.prompt) for e in examples})
        checked.errors.append(f"{path}: every example is held out for evaluation ({prompts} distinct prompt(s), "
                              f"eval_fraction {cfg.eval_fraction} holds out at least one); add prompts or pass --eval-fraction 0")
        return
    spec = LOSSES[cfg.loss]
    if spec.control_tokens:
        add_control_vocab(tokenizer)
    try:
        data = prepare_data(cfg, tokenizer, examples, spec)
    except DataError as e:
        checked.errors.append(str(e))
        return
    items = data.items(spec)
    per_epoch = len(epoch_batches(len(items), cfg.batch_size, cfg.seed, 0)) // cfg.grad_accum
    if per_epoch == 0:
        checked.errors.append(f"{path}: {len(items)} training {'pairs' if spec.paired else 'examples'} are too few for "
                              f"one optimiser step (batch {cfg.batch_size} × accumulation {cfg.grad_accum})")
    n_d = sum(t.desirable for t in data.train)
    n_u = len(data.train) - n_d
    advice = None
    if n_d == 0 or n_u == 0:
        advice = band_advice(1.0, 1.0, n_d, n_u)
    elif cfg.weights == "manual" and "desirable_weight" in spec.hparams:
        advice = band_advice(cfg.desirable_weight, cfg.undesirable_weight, n_d, n_u)
    if advice:
        checked.warnings.append(f"{path}: {advice}")
    checked.warnings.extend(f"{path}: {note}" for note in data.notes)


def summary(checked: Checked) -> str:
    ex = checked.examples
    n_d = sum(e.desirable for e in ex)
    return (f"{checked.path}: {checked.report.rows} row(s), schema {checked.report.schema or '?'}: "
            f"{len(ex)} example(s) ({n_d} desirable, {len(ex) - n_d} undesirable)")


def print_problems(checked: Checked, limit: int, err) -> None:
    """Errors and warnings, one line each, at most `limit` errors."""
    for line in checked.errors[:limit]:
        print(line, file=err)
    if len(checked.errors) > limit:
        print(f"... and {len(checked.errors) - limit} more problem(s) (raise --max-problems to see them)", file=err)
    for line in checked.report.lines():
        print(f"{checked.path}: warning: {line}", file=err)
    for line in checked.warnings:
        print(f"warning: {line}", file=err)
