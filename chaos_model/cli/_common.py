"""What the subcommands share: usage errors, the options every stack-driving command takes, and
opening the stack they name (a fresh local or compose stack, an owned one, a running system)."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

if TYPE_CHECKING:
    from chaos_model.adapter import TargetSpec
    from chaos_model.config import ChaosConfig
    from chaos_model.lease import RemoteStack
    from chaos_model.stack import AttachedStack, ComposeStack, LocalStack

EXIT_OK, EXIT_VIOLATION, EXIT_USAGE, EXIT_STACK = 0, 1, 2, 3


class UsageError(Exception):
    """A user's mistake on the command line: one line, exit 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``10m`` or ``1h`` as seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 90s, 10m, 1h)")
    value = float(match.group(1))
    return value * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def add_target_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        type=Path,
        default=None,
        metavar="FILE",
        help="the adapter of the system under test (default $CHAOS_MODEL_TARGET, else"
        " ./chaos-target.toml)",
    )


def add_bug_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bug",
        action="append",
        default=[],
        metavar="NAME",
        help="switch on a known bug of the target (its adapter's [bugs] names; repeatable)",
    )


def add_stack_options(parser: argparse.ArgumentParser, *, attach_target: bool = True) -> None:
    """The options that choose the stack a command drives."""
    add_target_option(parser)
    add_bug_option(parser)
    parser.add_argument(
        "--attach",
        type=Path,
        default=None,
        metavar="STATE_FILE",
        help="drive the stack `chaos-model stack up` owns (its state file), not a fresh one",
    )
    parser.add_argument(
        "--backend",
        choices=("local", "compose"),
        default="local",
        help="the stack to start: local processes (default) or the adapter's compose file under"
        " Docker (images from scripts/build-images)",
    )
    if not attach_target:
        return
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


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def target_of(args: argparse.Namespace) -> TargetSpec:
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


def check_config(config: ChaosConfig, target: TargetSpec) -> None:
    from chaos_model.machine import check_config as check

    try:
        check(config, target)
    except ValueError as error:
        raise UsageError(str(error)) from error


def start_local_stack(args: argparse.Namespace, keep: bool = False) -> LocalStack | None:
    from chaos_model.errors import StackError
    from chaos_model.stack import LocalStack

    target = target_of(args)
    stack = LocalStack(target, bugs=tuple(args.bug), keep_dir=keep)
    say(f"starting the local stack of target {target.name} ...")
    try:
        stack.start()
    except StackError as error:
        say(f"chaos-model: the stack did not start: {error}")
        return None
    say(
        f"stack ready in {stack.start_seconds:.1f}s"
        f" (postgres: {stack.binaries['postgres']}; nats-server: {stack.binaries['nats-server']})"
        f"\nstack folder: {stack.dir}"
    )
    return stack


def _start_compose_stack(args: argparse.Namespace, keep: bool = False) -> ComposeStack | None:
    from chaos_model.errors import StackError
    from chaos_model.stack import ComposeStack

    try:
        stack = ComposeStack(target_of(args), bugs=tuple(args.bug), keep_dir=keep)
    except StackError as error:
        raise UsageError(str(error)) from error
    say("starting the compose stack ...")
    try:
        stack.start()
    except StackError as error:
        say(f"chaos-model: the stack did not start: {error}")
        return None
    say(
        f"stack ready in {stack.start_seconds:.1f}s (compose project {stack.project})"
        f"\nstack folder: {stack.dir}"
    )
    return stack


def open_stack(
    args: argparse.Namespace, *, keep: bool = False
) -> LocalStack | ComposeStack | RemoteStack | AttachedStack | None:
    """A fresh local or compose stack, or (``--attach``) the stack another process owns, or
    (``--attach-target``) the running system the adapter describes; None if none could be had
    (the reason is printed)."""
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
        return start_local_stack(args, keep=keep)
    return _attach_owned(args)


def _attach_owned(args: argparse.Namespace) -> RemoteStack | None:
    from chaos_model.errors import StackError
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
    return _guarded(remote, remote.check, "chaos-model:", f"the stack of {args.attach}")


def _attach_target(args: argparse.Namespace) -> AttachedStack | None:
    from chaos_model.stack import AttachedStack

    if args.attach is not None or getattr(args, "backend", "local") != "local":
        raise UsageError("--attach-target attaches to the adapter's system: drop --attach")
    if args.bug:
        raise UsageError("--bug cannot be combined with --attach-target: it runs as it is")
    stack = AttachedStack(target_of(args), test_environment=args.test_environment)
    return _guarded(
        stack, stack.start, "chaos-model: cannot attach:", f"target {stack.target.name}"
    )


S = TypeVar("S")


def _guarded(stack: S, attach: Callable[[], None], failed: str, what: str) -> S | None:
    """``stack`` once the environment guard let it be touched and ``attach`` reached it; None
    (the reason printed) when it could not be reached."""
    from chaos_model.errors import StackError
    from chaos_model.guard import ensure_injectable

    ensure_injectable(stack)  # before anything is touched: UnsafeTarget is exit 2
    try:
        attach()
    except StackError as error:
        say(f"{failed} {error}")
        return None
    say(f"attached to {what}")
    return stack
