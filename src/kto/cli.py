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
    run_demo(config_from_args(args, DemoConfig, defaults=TINY if getattr(args, "tiny", False) else None))


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


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: the problem, a close flag name if there is one, and
    where the help is (argparse would print the top-level usage block instead)."""

    def error(self, message: str):
        import difflib
        import re

        parser, path = self._command(getattr(self, "argv", None) or sys.argv[1:])
        hint = ""
        unknown = re.match(r"unrecognized arguments: (--\S+)", message)
        if unknown:
            flags = [f for a in parser._actions for f in a.option_strings if f.startswith("--")]
            close = difflib.get_close_matches(unknown.group(1).split("=")[0], flags, n=1, cutoff=0.75)
            hint = f"; did you mean {close[0]}?" if close else ""
        see = " ".join(["kto", *path, "--help"]) if self.prog == "kto" else f"{self.prog} --help"
        self.exit(2, f"{self.prog}: error: {message}{hint} (see {see})\n")

    def _command(self, argv: list[str]):
        """The subcommand parser that argv's leading words select, and those words."""
        parser, path = self, []
        for word in argv:
            subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            if word.startswith("-") or not subs or word not in subs[0].choices:
                break
            parser, path = subs[0].choices[word], path + [word]
        return parser, path


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="kto", description="Align language models from binary feedback with KTO.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for register in REGISTER:
        register(sub)
    return parser


def _terminated(signum, frame):
    # SIGTERM (kill, timeout, a scheduler) unwinds like Ctrl-C, so the staging folder is removed
    raise KeyboardInterrupt


def _one_line_warning(message, category, filename, lineno, line=None):
    return f"kto: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    import signal
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    parser.argv = sys.argv[1:] if argv is None else list(argv)  # for the error's "see kto <command> --help"
    args = parser.parse_args(argv)
    warnings.formatwarning = _one_line_warning
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        args.func(args)
    except KTOError as e:
        print(f"kto: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kto: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
