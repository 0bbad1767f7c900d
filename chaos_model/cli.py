"""The ``chaos-model`` command line.

Exit codes: 0 no invariant violated, 1 an invariant was violated, 2 a usage error or a target
the environment guard refuses (one line on stderr, never a traceback), 3 the stack could not be
started (or, with ``--attach``, its owner does not answer).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from chaos_model.adapter import TargetSpec
    from chaos_model.config import ChaosConfig
    from chaos_model.lease import RemoteStack
    from chaos_model.runner import RunReport
    from chaos_model.stack import AttachedStack, ComposeStack, LocalStack

EXIT_OK, EXIT_VIOLATION, EXIT_USAGE, EXIT_STACK = 0, 1, 2, 3


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``10m`` or ``1h`` as seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 90s, 10m, 1h)")
    value = float(match.group(1))
    return value * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from chaos_model.config import ALL_FAULT_KINDS
    from chaos_model.experiments import _cli as experiments_cli

    parser = _Parser(prog="chaos-model", description=__doc__.splitlines()[0].strip('"` .'))
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="run the chaos model against a fresh local stack")
    run.add_argument("--examples", type=_positive, default=30, help="examples (default 30)")
    run.add_argument("--steps", type=_positive, default=20, help="steps per example (default 20)")
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
    run.add_argument("--max-concurrent-faults", type=_positive, default=2)
    run.add_argument(
        "--failpoints", default=None, help="only these failpoints, comma-separated (default all)"
    )
    run.add_argument(
        "--bug",
        action="append",
        default=[],
        metavar="NAME",
        help="switch on a known bug of the target (its adapter's [bugs] names; repeatable)",
    )
    run.add_argument("--replays", type=_positive, default=3, help="replays of a found failure")
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
    run.add_argument(
        "--attach",
        type=Path,
        default=None,
        metavar="STATE_FILE",
        help="drive the stack `chaos-model stack up` owns (its state file), not a fresh one",
    )
    _add_backend(run)
    run.add_argument(
        "--max-fault-duration",
        type=parse_duration,
        default=60.0,
        help="with --attach, the owner heals a fault still applied after this long (default 60s)",
    )

    replay = commands.add_parser("replay", help="replay a saved failing program on a fresh stack")
    replay.add_argument("file", type=Path, help="steps.json or the folder that holds it")
    replay.add_argument("--times", type=_positive, default=1, help="replays (default 1)")
    replay.add_argument("--bug", action="append", default=[], metavar="NAME")
    replay.add_argument(
        "--attach",
        type=Path,
        default=None,
        metavar="STATE_FILE",
        help="replay on the stack `chaos-model stack up` owns instead of a fresh one",
    )
    _add_backend(replay)
    experiments_cli.add_save_option(replay)

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
    experiments_cli.add_parser(commands, _Parser)

    stack = commands.add_parser("stack", help="manage the embedded local stack")
    stack_commands = stack.add_subparsers(dest="stack_command", required=True, parser_class=_Parser)
    up = stack_commands.add_parser("up", help="start the stack in the foreground until Ctrl-C")
    up.add_argument("--bug", action="append", default=[], metavar="NAME")
    add_target_option(up)
    up.add_argument("--keep", action="store_true", help="keep the data folder after stop")
    up.add_argument(
        "--state-file",
        type=Path,
        default=None,
        help="where to write the descriptor runners attach to (default <stack dir>/stack.json)",
    )
    up.add_argument(
        "--control-port", type=int, default=0, help="loopback port of the control API (default any)"
    )
    return parser


def add_target_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        type=Path,
        default=None,
        metavar="FILE",
        help="the adapter of the system under test (default $CHAOS_MODEL_TARGET, else"
        " ./chaos-target.toml)",
    )


def _add_backend(parser: argparse.ArgumentParser) -> None:
    add_target_option(parser)
    parser.add_argument(
        "--attach-target",
        action="store_true",
        help="attach to the running system the adapter's [attach] section describes instead of"
        " starting one",
    )
    parser.add_argument(
        "--test-environment",
        action="store_true",
        help="with --attach-target: declare the attached system a test environment chaos may"
        " touch (else its adapter must say `test_environment = true`)",
    )
    parser.add_argument(
        "--backend",
        choices=("local", "compose"),
        default="local",
        help="the stack to start: local processes (default) or compose.test.yml under Docker"
        " (images from scripts/build-images)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    from chaos_model.errors import AdapterError, UnsafeTarget
    from chaos_model.experiments import BadExperiment

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "invariants":
            return _invariants(args)
        if args.command == "experiment":
            from chaos_model.experiments._cli import main as experiment_main

            return experiment_main(args, _open_stack)
        if args.command == "run":
            return _run(args)
        if args.command == "replay":
            return _replay(args)
        return _stack_up(args)
    except (UsageError, UnsafeTarget, BadExperiment, AdapterError) as error:
        print(f"chaos-model: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `chaos-model invariants | head`
        sys.stderr.close()
        return EXIT_OK
    except KeyboardInterrupt:
        print("\nchaos-model: interrupted; every fault was healed and the stack stopped.")
        return 130


def _invariants(args: argparse.Namespace) -> int:
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


def _target(args: argparse.Namespace) -> TargetSpec:
    """The adapter named by --target (or the default one), with --bug checked against it."""
    from chaos_model.adapter import load_target

    target = load_target(getattr(args, "target", None))
    unknown = sorted(set(getattr(args, "bug", None) or ()) - set(target.bugs))
    if unknown:
        raise UsageError(
            f"--bug: unknown bug(s) {', '.join(unknown)} for target {target.name};"
            f" known: {', '.join(target.bugs) or 'none (its adapter lists no [bugs])'}"
        )
    return target


def _start_stack(args: argparse.Namespace, keep: bool = False):  # type: ignore[no-untyped-def]
    from chaos_model.errors import StackError
    from chaos_model.stack import LocalStack

    target = _target(args)
    stack = LocalStack(target, bugs=tuple(args.bug), keep_dir=keep)
    print(f"starting the local stack of target {target.name} ...", file=sys.stderr, flush=True)
    try:
        stack.start()
    except StackError as error:
        print(f"chaos-model: the stack did not start: {error}", file=sys.stderr)
        return None
    print(
        f"stack ready in {stack.start_seconds:.1f}s"
        f" (postgres: {stack.binaries['postgres']}; nats-server: {stack.binaries['nats-server']})"
        f"\nstack folder: {stack.dir}",
        file=sys.stderr,
        flush=True,
    )
    return stack


def _start_compose_stack(args: argparse.Namespace, keep: bool = False) -> ComposeStack | None:
    from chaos_model.errors import StackError
    from chaos_model.stack import ComposeStack

    try:
        stack = ComposeStack(_target(args), bugs=tuple(args.bug), keep_dir=keep)
    except StackError as error:
        raise UsageError(str(error)) from error
    print("starting the compose stack ...", file=sys.stderr, flush=True)
    try:
        stack.start()
    except StackError as error:
        print(f"chaos-model: the stack did not start: {error}", file=sys.stderr)
        return None
    print(
        f"stack ready in {stack.start_seconds:.1f}s (compose project {stack.project})"
        f"\nstack folder: {stack.dir}",
        file=sys.stderr,
        flush=True,
    )
    return stack


def _open_stack(
    args: argparse.Namespace, *, keep: bool = False
) -> LocalStack | ComposeStack | RemoteStack | AttachedStack | None:
    """A fresh local or compose stack, or (``--attach``) the stack another process owns; None if
    none could be had (the reason is printed)."""
    backend = getattr(args, "backend", "local")
    if args.attach is not None and backend != "local":
        raise UsageError("--attach drives the stack another process owns: drop --backend")
    if getattr(args, "attach_target", False):
        return _attach_target(args)
    if getattr(args, "test_environment", False):
        raise UsageError("--test-environment goes with --attach-target")
    if backend == "compose":
        return _start_compose_stack(args, keep=keep)
    if args.attach is None:
        stack: LocalStack | None = _start_stack(args, keep=keep)
        return stack
    from chaos_model.errors import StackError
    from chaos_model.guard import ensure_injectable
    from chaos_model.lease import RemoteStack

    if args.bug:
        raise UsageError(
            "--bug cannot be combined with --attach: the owner's stack has its bugs"
            " (`chaos-model stack up --bug NAME`)"
        )
    try:
        remote = RemoteStack.from_state_file(args.attach, check=False)
    except StackError as error:
        raise UsageError(str(error)) from error
    ensure_injectable(remote)  # before anything is touched: UnsafeTarget is exit 2
    try:
        remote.check()
    except StackError as error:
        print(f"chaos-model: {error}", file=sys.stderr)
        return None
    print(f"attached to the stack of {args.attach}", file=sys.stderr, flush=True)
    return remote


def _attach_target(args: argparse.Namespace) -> AttachedStack | None:
    from chaos_model.errors import StackError
    from chaos_model.guard import ensure_injectable
    from chaos_model.stack import AttachedStack

    if args.attach is not None or getattr(args, "backend", "local") != "local":
        raise UsageError("--attach-target attaches to the adapter's system: drop --attach")
    if args.bug:
        raise UsageError("--bug cannot be combined with --attach-target: it runs as it is")
    stack = AttachedStack(_target(args), test_environment=args.test_environment)
    ensure_injectable(stack)  # before anything is touched: UnsafeTarget is exit 2
    try:
        stack.start()
    except StackError as error:
        print(f"chaos-model: cannot attach: {error}", file=sys.stderr)
        return None
    print(f"attached to target {stack.target.name}", file=sys.stderr, flush=True)
    return stack


def _run(args: argparse.Namespace) -> int:
    from chaos_model.config import ALL_FAULT_KINDS, ChaosConfig
    from chaos_model.report import print_report
    from chaos_model.runner import run

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
    try:
        config = ChaosConfig(
            examples=args.examples,
            steps=args.steps,
            seed=args.seed,
            max_time=args.max_time,
            faults=faults,
            max_concurrent_faults=args.max_concurrent_faults,
            failpoints=None
            if args.failpoints is None
            else tuple(name.strip() for name in args.failpoints.split(",") if name.strip()),
            replays=args.replays,
            failures_dir=args.failures_dir,
            database=not args.no_database,
            shrink=not args.no_shrink,
            sweep=not args.no_sweep,
            max_fault_seconds=args.max_fault_duration,
        )
    except ValueError as error:
        raise UsageError(str(error)) from error
    attaching = args.attach is not None or args.attach_target
    if not attaching:  # the attached stack's own adapter is checked once attached
        _check_config(config, _target(args))
    stack = _open_stack(args)
    if stack is None:
        return EXIT_STACK
    with stack:
        _check_config(config, stack.target)
        report = run(stack, config, log_dirs=stack.log_paths(), capture_passing=args.report_passing)
    print_report(report, sys.stdout, bugs=args.bug or ())
    _write_report(report, args, stack.target)
    return EXIT_VIOLATION if report.failed else EXIT_OK


def _check_config(config: ChaosConfig, target: TargetSpec) -> None:
    from chaos_model.machine import check_config

    try:
        check_config(config, target)
    except ValueError as error:
        raise UsageError(str(error)) from error


def _write_report(report: RunReport, args: argparse.Namespace, target: TargetSpec) -> None:
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


def _replay(args: argparse.Namespace) -> int:
    from chaos_model.replay import BadProgram, load_steps, replay, saved_target

    try:
        steps = load_steps(args.file)
        if args.target is None:
            args.target = saved_target(args.file)  # the adapter it failed on
    except BadProgram as error:
        raise UsageError(str(error)) from error
    if args.save_as is not None:
        from chaos_model.experiments import from_failure, save

        saved = save(
            from_failure(args.save_as, args.file, steps), args.experiments_dir, target=args.target
        )
        print(f"saved as experiment {args.save_as}: {saved}")
        print(f"run it: chaos-model experiment run {args.save_as}")
    stack = _open_stack(args)
    if stack is None:
        return EXIT_STACK
    failures = 0
    with stack:
        for attempt in range(1, args.times + 1):
            try:
                outcome = replay(steps, stack)
            except BadProgram as error:
                raise UsageError(str(error)) from error
            failures += int(outcome.failed)
            verdict = "FAILED" if outcome.failed else "passed"
            print(f"replay {attempt}/{args.times}: {verdict}: {outcome.message}")
    print(f"reproduced {failures} of {args.times}")
    return EXIT_VIOLATION if failures else EXIT_OK


def _stack_up(args: argparse.Namespace) -> int:
    import logging

    from chaos_model.lease import StackOwner

    # The owner's own NATS client reports every NATS kill as an error: not the owner's news.
    logging.getLogger("nats").setLevel(logging.CRITICAL)
    stack = _start_stack(args, keep=args.keep)
    if stack is None:
        return EXIT_STACK
    with stack, StackOwner(stack, state_file=args.state_file, port=args.control_port) as owner:
        for name, value in stack.endpoints.as_dict().items():
            if value:
                print(f"{name:18} {value}")
        print(f"{'webhook_secret':18} {stack.endpoints.webhook_secret}")
        print(f"{'logs':18} {stack.log_dir}")
        print(f"{'control_url':18} {owner.control_url}")
        print(f"{'state_file':18} {owner.state_file}")
        print(f"attach with: chaos-model run --attach {owner.state_file}")
        print("press Ctrl-C to stop", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        # SIGINT too, explicitly: a shell starting `stack up &` may hand it down ignored.
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
        print("stopping ...", flush=True)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
