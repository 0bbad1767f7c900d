"""``chaos-model stack up``: the stack by hand, in the foreground until Ctrl-C, served to
runners in other processes (``--attach STATE_FILE``)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from pathlib import Path
from typing import Any

from chaos_model.cli._common import (
    EXIT_OK,
    EXIT_STACK,
    Parser,
    add_bug_option,
    add_target_option,
    start_local_stack,
)


def add_parser(commands: Any) -> None:
    stack = commands.add_parser("stack", help="manage the embedded local stack")
    stack_commands = stack.add_subparsers(dest="stack_command", required=True, parser_class=Parser)
    up = stack_commands.add_parser("up", help="start the stack in the foreground until Ctrl-C")
    add_bug_option(up)
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
    up.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    import logging

    from chaos_model.lease import StackOwner

    # The owner's own NATS client reports every NATS kill as an error: not the owner's news.
    logging.getLogger("nats").setLevel(logging.CRITICAL)
    stack = start_local_stack(args, keep=args.keep)
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
