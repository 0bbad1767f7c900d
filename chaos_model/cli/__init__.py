"""The ``chaos-model`` command line.

One module per subcommand, its options beside it. Exit codes: 0 no invariant violated, 1 an
invariant was violated, 2 a usage error or a target the environment guard refuses (one line on
stderr, never a traceback), 3 the stack could not be started (or, with ``--attach``, its owner
does not answer).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from chaos_model.cli import _experiment, _invariants, _points, _replay, _run, _stack
from chaos_model.cli._common import (
    EXIT_OK,
    EXIT_STACK,
    EXIT_USAGE,
    EXIT_VIOLATION,
    Parser,
    UsageError,
    parse_duration,
)

__all__ = [
    "EXIT_OK",
    "EXIT_STACK",
    "EXIT_USAGE",
    "EXIT_VIOLATION",
    "build_parser",
    "main",
    "parse_duration",
]

SUBCOMMANDS = (_run, _replay, _points, _invariants, _experiment, _stack)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="chaos-model", description=__doc__.splitlines()[0].strip('"` .'))
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in SUBCOMMANDS:
        module.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from chaos_model.errors import AdapterError, StackError, UnsafeTarget
    from chaos_model.experiments import BadExperiment

    try:
        args = build_parser().parse_args(argv)
        code: int = args.handler(args)
        return code
    except (UsageError, UnsafeTarget, BadExperiment, AdapterError) as error:
        print(f"chaos-model: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except StackError as error:  # the stack, not chaos-model: what it waited for, no traceback
        print(f"chaos-model: stack error: {error}", file=sys.stderr)
        return EXIT_STACK
    except BrokenPipeError:  # e.g. `chaos-model invariants | head`
        sys.stderr.close()
        return EXIT_OK
    except KeyboardInterrupt:
        print("\nchaos-model: interrupted; every fault was healed and the stack stopped.")
        return 130
