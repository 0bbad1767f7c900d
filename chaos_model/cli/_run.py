"""``chaos-model run``: the chaos model against a stack, then the report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from chaos_model.cli._common import (
    EXIT_OK,
    EXIT_STACK,
    EXIT_VIOLATION,
    UsageError,
    add_stack_options,
    check_config,
    open_stack,
    parse_duration,
    positive,
    target_of,
)


def add_parser(commands: Any) -> None:
    from chaos_model.config import ALL_FAULT_KINDS

    run = commands.add_parser("run", help="run the chaos model against a fresh local stack")
    run.add_argument("--examples", type=positive, default=30, help="examples (default 30)")
    run.add_argument("--steps", type=positive, default=20, help="steps per example (default 20)")
    run.add_argument("--seed", type=int, default=None, help="reproduce a run's choices")
    run.add_argument(
        "--max-time", type=parse_duration, default=parse_duration("2m"), help="e.g. 2m (default)"
    )
    run.add_argument(
        "--faults",
        default=",".join(ALL_FAULT_KINDS),
        help=f"fault kinds to use, comma-separated (default all: {','.join(ALL_FAULT_KINDS)})",
    )
    run.add_argument(
        "--forbid", default="", help="fault kinds never to use, comma-separated (e.g. kill,stop)"
    )
    run.add_argument("--max-concurrent-faults", type=positive, default=2)
    run.add_argument(
        "--failpoints", default=None, help="only these failpoints, comma-separated (default all)"
    )
    run.add_argument(
        "--skip-invariants",
        default="",
        help="invariants not to check, comma-separated (a known bug need not hide the next one)",
    )
    run.add_argument("--replays", type=positive, default=3, help="replays of a found failure")
    run.add_argument("--no-shrink", action="store_true", help="report the first failure as is")
    run.add_argument("--no-database", action="store_true", help="ignore Hypothesis's database")
    run.add_argument(
        "--no-sweep",
        action="store_true",
        help="skip the opening sweep (each single fault once) and start the search at once",
    )
    run.add_argument("--failures-dir", type=Path, default=Path("chaos-failures"))
    run.add_argument(
        "--report-dir",
        type=Path,
        default=Path("chaos-reports"),
        help="where each run writes its report folder (default chaos-reports)",
    )
    run.add_argument(
        "--report-passing",
        action="store_true",
        help="also draw the timeline of the last passing example in the report",
    )
    add_stack_options(run)
    run.add_argument(
        "--max-fault-duration",
        type=parse_duration,
        default=60.0,
        help="with --attach, the owner heals a fault still applied after this long (default 60s)",
    )
    run.set_defaults(handler=command)


def _fault_kinds(args: argparse.Namespace) -> tuple[str, ...]:
    from chaos_model.config import ALL_FAULT_KINDS

    forbidden = {kind.strip() for kind in args.forbid.split(",") if kind.strip()}
    unknown = sorted(forbidden - set(ALL_FAULT_KINDS))
    if unknown:
        raise UsageError(f"--forbid: unknown fault kind(s) {', '.join(unknown)}")
    faults = tuple(
        kind.strip()
        for kind in args.faults.split(",")
        if kind.strip() and kind.strip() not in forbidden
    )
    if not faults:
        raise UsageError("no fault kind left to use: check --faults and --forbid")
    return faults


def command(args: argparse.Namespace) -> int:
    from chaos_model.config import ChaosConfig
    from chaos_model.report import print_report
    from chaos_model.runner import run

    failpoints = None
    if args.failpoints is not None:
        failpoints = tuple(name.strip() for name in args.failpoints.split(",") if name.strip())
    try:
        config = ChaosConfig(
            examples=args.examples,
            steps=args.steps,
            seed=args.seed,
            max_time=args.max_time,
            faults=_fault_kinds(args),
            max_concurrent_faults=args.max_concurrent_faults,
            failpoints=failpoints,
            replays=args.replays,
            failures_dir=args.failures_dir,
            database=not args.no_database,
            shrink=not args.no_shrink,
            sweep=not args.no_sweep,
            max_fault_seconds=args.max_fault_duration,
            skip_invariants=tuple(n.strip() for n in args.skip_invariants.split(",") if n.strip()),
        )
    except ValueError as error:
        raise UsageError(str(error)) from error
    if args.attach is None and not args.attach_target:  # an attached stack's is checked later
        check_config(config, target_of(args))
    stack = open_stack(args)
    if stack is None:
        return EXIT_STACK
    with stack:
        check_config(config, stack.target)
        report = run(stack, config, log_dirs=stack.log_paths(), capture_passing=args.report_passing)
    print_report(report, sys.stdout, bugs=args.bug or ())
    _write_report(report, args, stack.target)
    return EXIT_VIOLATION if report.failed else EXIT_OK


def _write_report(report: Any, args: argparse.Namespace, target: Any) -> None:
    from chaos_model.reporting.writer import write_run_report

    try:
        written = write_run_report(
            report, args.report_dir, bugs=args.bug, seed=args.seed, target=target
        )
    except OSError as error:
        print(f"chaos-model: no report written to {args.report_dir}: {error}", file=sys.stderr)
        return
    print(f"report: {written.html}")
    for png in written.pngs:
        print(f"timeline: {png}")
    for note in written.notes:
        print(f"report: {note}")
