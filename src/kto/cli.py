"""The `kto` command: thin subcommands over the Python API."""
from __future__ import annotations

import argparse
import os
import sys

from .data import commands as _data_commands
from .errors import KTOError


def _train(args) -> None:
    from .config import config_from_args
    from .train import train

    train(config_from_args(args))


def _report(args) -> None:
    from .report import write_report

    print(write_report(args.run))


def _demo(args) -> None:
    from .config import config_from_args
    from .demo.run import TINY, DemoConfig, run_demo

    # --tiny swaps in small defaults; a --config YAML file and flags given on the command line win.
    if getattr(args, "tiny", False):
        in_file = set(_yaml_keys(args.config)) if getattr(args, "config", None) else set()
        for name, value in TINY.items():
            if not hasattr(args, name) and name not in in_file:
                setattr(args, name, value)
    run_demo(config_from_args(args, DemoConfig))


def _yaml_keys(path: str) -> list[str]:
    import yaml

    try:
        return list(yaml.safe_load(open(path)) or {})
    except (OSError, yaml.YAMLError) as e:
        raise KTOError(f"{path}: cannot read config ({e})") from None


def _register_demo(sub) -> None:
    from .config import add_config_args
    from .demo.run import DemoConfig

    p = sub.add_parser("demo", help="align SmolLM2-135M-Instruct on feedback about its own replies to built-in questions, and report the gain",
                       argument_default=argparse.SUPPRESS)
    add_config_args(p, DemoConfig)
    p.set_defaults(func=_demo)


def _register_train(sub) -> None:
    from .config import add_config_args

    p = sub.add_parser("train", help="train a policy on feedback data", argument_default=argparse.SUPPRESS)
    add_config_args(p)
    p.set_defaults(func=_train)


def _register_report(sub) -> None:
    p = sub.add_parser("report", help="(re)write report.md and plots for a run folder")
    p.add_argument("run")
    p.set_defaults(func=_report)


# Each subcommand registers itself; adding one is one function and one line here.
REGISTER = [_register_train, _register_demo, _register_report, _data_commands.register]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kto", description="Align language models from binary feedback with KTO.")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in REGISTER:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except KTOError as e:
        print(f"kto: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kto: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
