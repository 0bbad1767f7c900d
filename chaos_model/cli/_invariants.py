"""``chaos-model invariants``: every invariant with its statement, or docs/invariants.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from chaos_model.cli._common import EXIT_OK


def add_parser(commands: Any) -> None:
    invariants = commands.add_parser("invariants", help="print every invariant with its statement")
    invariants.add_argument(
        "--markdown", action="store_true", help="as Markdown, with counts from recorded runs"
    )
    invariants.add_argument(
        "--runs",
        type=Path,
        default=Path("chaos-failures") / "runs",
        help="the run statistics to count from, with any runs/ folder below it"
        " (default chaos-failures/runs)",
    )
    invariants.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    from chaos_model.invariants import ALL

    if args.markdown:
        from chaos_model.invariant_docs import render_markdown

        sys.stdout.write(render_markdown(args.runs))
        return EXIT_OK
    for invariant in ALL:
        print(f"{invariant.name} ({invariant.kind})")
        for line in invariant.statement().splitlines():
            print(f"    {line}")
        print()
    return EXIT_OK
