"""`kto data inspect | validate | convert | audit`: thin wrappers over the data modules.

inspect and validate take the same flags as `kto train` (or its --config YAML), so they
check exactly what training would: the tokenizer of --model, the length limits, the
micro-batch size. Only the tokenizer is ever loaded, never a model.
"""
from __future__ import annotations

import argparse
import json
import sys

from ..errors import KTOError


def _config(args):
    from ..config import config_from_args

    if getattr(args, "file", None):
        args.data = args.file
    cfg = config_from_args(args)
    if not cfg.data:
        raise KTOError("give a data file (FILE, --data or data: in --config)")
    return cfg


def _validate(args) -> None:
    from ..models import load_tokenizer
    from .validate import check_file, check_training, print_problems, summary

    cfg = _config(args)
    checked = check_file(cfg.data, cfg.columns, cfg.data_split, strict=True)
    check_training(checked, cfg, load_tokenizer(cfg.model) if checked.examples else None)
    print_problems(checked, args.max_problems, sys.stderr)
    print(summary(checked))
    if checked.errors:
        raise KTOError(f"{cfg.data}: {len(checked.errors)} problem(s) found")
    print(f"{cfg.data}: OK for training with model {cfg.model} (max_length {cfg.max_length}, batch {cfg.batch_size})")


def _inspect(args) -> None:
    from ..models import load_tokenizer
    from .inspect import format_inspection, inspect_examples
    from .validate import check_file

    cfg = _config(args)
    checked = check_file(cfg.data, cfg.columns, cfg.data_split, strict=False)
    if not checked.examples and checked.errors:
        raise KTOError(checked.errors[0])
    tok = None if args.no_tokens else load_tokenizer(cfg.model)
    info = inspect_examples(checked, tok, cfg.model, cfg.max_length, cfg.max_prompt_length)
    print(json.dumps(info, indent=1, ensure_ascii=False) if args.json else format_inspection(info))


def _convert(args) -> None:
    from ..config import parse_columns
    from .convert import convert

    lines = convert(args.file, args.output, args.to, columns=parse_columns(args.columns), split=args.split,
                    oasst=args.oasst, ratings=args.ratings, threshold=args.threshold, text=args.text,
                    template=args.template, one_per_x=args.one_per_prompt, seed=args.seed, overwrite=args.overwrite)
    for line in lines:
        print(line)


def _audit(args) -> None:
    from .audit import format_audit, score_run
    from .convert import check_destination, write_rows

    if args.output:  # refuse before the (slow) scoring, not after
        check_destination(args.output, args.overwrite)
    scores, z0 = score_run(args.run, args.data, args.batch_size)
    if args.output:
        write_rows([s.row() for s in scores], args.output, args.overwrite)
    print(format_audit(scores, z0, args.top))
    if args.output:
        print(f"wrote all {len(scores)} scores to {args.output}")


def register(sub) -> None:
    from ..config import add_config_args
    from .convert import TARGETS

    p = sub.add_parser("data", help="inspect, validate, convert and audit feedback data")
    data = p.add_subparsers(dest="data_command", required=True)

    q = data.add_parser("inspect", help="rows, schema, labels, band-rule weights, token lengths, duplicates",
                        argument_default=argparse.SUPPRESS)
    q.add_argument("file", nargs="?", help="data file (or --data / --config)")
    q.add_argument("--json", action="store_true", default=False, help="print the statistics as JSON")
    q.add_argument("--no-tokens", action="store_true", default=False, help="skip the token statistics (no tokenizer)")
    add_config_args(q)
    q.set_defaults(func=_inspect)

    v = data.add_parser("validate", help="list every problem, one line each; exit non-zero if any",
                        argument_default=argparse.SUPPRESS)
    v.add_argument("file", nargs="?", help="data file (or --data / --config)")
    v.add_argument("--max-problems", type=int, default=50, help="problems to print at most (default: 50)")
    add_config_args(v)
    v.set_defaults(func=_validate)

    c = data.add_parser("convert", help="convert between feedback formats")
    c.add_argument("file", help="input data file")
    c.add_argument("output", help="output file (.jsonl, .jsonl.gz, .json, .csv, .parquet)")
    c.add_argument("--to", required=True, choices=TARGETS, help="output format")
    c.add_argument("--columns", default="", help="rename input columns, ours=theirs (as in kto train)")
    c.add_argument("--split", default="train", help="split, for a Hugging Face dataset name")
    c.add_argument("--oasst", choices=("votes", "ranks"), default="votes",
                   help="OpenAssistant trees: labels from votes, or pairs from sibling ranks (default: votes)")
    c.add_argument("--ratings", default="", help="column of numeric ratings to turn into labels by --threshold")
    c.add_argument("--threshold", default="median", help="rating >= this is desirable: a number, median or mean")
    c.add_argument("--text", choices=("keep", "plain", "messages"), default="keep",
                   help="keep prompts as they are, render chat messages as text, or parse text into messages")
    c.add_argument("--template", choices=("hh", "chatml"), default="hh", help="text form of a conversation")
    c.add_argument("--one-per-prompt", action="store_true", help="keep one example per prompt, at random (one-y-per-x)")
    c.add_argument("--seed", type=int, default=0, help="seed for one-per-prompt and for A/B sides")
    c.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    c.set_defaults(func=_convert)

    a = data.add_parser("audit", help="after training: examples the model finds hardest to fit (likely mislabels)")
    a.add_argument("run", help="run folder written by kto train")
    a.add_argument("--data", default="", help="data file (default: the one in the run's config.yaml)")
    a.add_argument("--top", type=int, default=20, help="examples to list (default: 20)")
    a.add_argument("--batch-size", type=int, default=0, help="scoring batch (default: the run's)")
    a.add_argument("--output", default="", help="also write every score, most suspicious first (.jsonl/.csv/...)")
    a.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    a.set_defaults(func=_audit)
