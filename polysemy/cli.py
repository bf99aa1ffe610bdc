"""The ``polysemy`` command line: a thin dispatcher over the subpackages.

Each command lives beside the code it drives and exposes ``register(subparsers)``, which adds its
parser(s) and sets ``func`` (a callable taking the parsed ``argparse.Namespace`` and returning an exit
status). This file only assembles them and turns bad input into a one-line error with exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys

from . import __version__
from .errors import ConfigError
from .jsonout import emit_json
from .threads import configure_threads

# Modules that register sub-commands, in the order they appear in ``polysemy --help``.
COMMAND_MODULES = (
    "polysemy.demo",              # polysemy demo
    "polysemy.theory.cli",        # polysemy check
    "polysemy.sae.cli",           # polysemy train
    "polysemy.experiments.cli",   # polysemy sweep / figures
    "polysemy.experiments.bench_cli",  # polysemy bench / peers
    "polysemy.llm.cli",           # polysemy llm-bench
)


def add_command(subparsers, name: str, help: str, doc: str) -> argparse.ArgumentParser:
    """Add the command ``name``: ``help`` is its line in ``polysemy --help``, the first line of ``doc``
    (its module's docstring) its description."""
    return subparsers.add_parser(name, help=help, description=doc.splitlines()[0])


class _Parser(argparse.ArgumentParser):
    """argparse that raises ConfigError instead of printing usage, so every bad option is one line."""

    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="polysemy", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"polysemy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(sub)
    return parser


def _interrupt_message(args) -> str:
    hint = getattr(args, "interrupt_hint", None) if args is not None else None
    if callable(hint):
        hint = hint(args)
    return "polysemy: interrupted" + (f"; {hint}" if hint else "")


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2

        configure_threads()
        if getattr(args, "json", False):
            args.json_stdout = sys.stdout
            with contextlib.redirect_stdout(sys.stderr):
                status = args.func(args)
        else:
            status = args.func(args)
        return int(status or 0)
    except ConfigError as exc:
        message = str(exc).replace("\n", " ")
        print(f"polysemy: error: {message}", file=sys.stderr)
        wants_json = getattr(args, "json", False) if args is not None else "--json" in (argv or sys.argv[1:])
        if wants_json:
            emit_json(args, {"error": message, "status": 2})
        return 2
    except KeyboardInterrupt:
        print(_interrupt_message(args), file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
