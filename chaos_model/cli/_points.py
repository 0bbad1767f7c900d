"""``chaos-model points``: every fault point one delivery reaches, per service, with where it is
in the service's code."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from chaos_model.cli._common import (
    EXIT_OK,
    EXIT_STACK,
    UsageError,
    add_bug_option,
    add_target_option,
    start_local_stack,
)

QUIESCE_SECONDS = 60.0


def add_parser(commands: Any) -> None:
    points = commands.add_parser(
        "points", help="start the stack, deliver one update, list every fault point it reaches"
    )
    add_target_option(points)
    add_bug_option(points)
    points.add_argument("--json", action="store_true", help="as JSON, one object per point")
    points.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    from chaos_model._wait import WaitTimeout, wait_until
    from chaos_model.history import History
    from chaos_model.target import make_target
    from chaos_model.telegram import BotApi, run_chat_id

    stack = start_local_stack(args)
    if stack is None:
        return EXIT_STACK
    with stack:
        if getattr(stack, "points", None) is None:
            raise UsageError(f"no service of target {stack.target.name} has fault points")
        stack.reset()
        target = make_target(stack, History())
        try:
            target.deliver(BotApi().message(run_chat_id(0), "which points does this reach?"))
            try:
                wait_until(
                    target.quiescent, timeout=QUIESCE_SECONDS, what="the delivery to be done"
                )
            except WaitTimeout as error:
                print(f"chaos-model: {error}; listing what was reached so far", file=sys.stderr)
        finally:
            target.close()
        known = stack.points.points()
        reached = stack.points.reached()
    rows = [
        (known[identity], calls)
        for identity, calls in sorted(reached.counts.items())
        if identity in known
    ]
    if args.json:
        for point, calls in rows:
            print(json.dumps({**point.to_json(), "kind": point.kind, "calls": calls}))
        return EXIT_OK
    services = sorted({point.service for point, _ in rows})
    print(f"{len(rows)} fault points reached by one delivery, in {len(services)} service(s)")
    for service in services:
        print(f"\n{service}")
        for point, calls in rows:
            if point.service == service:
                mark = "*" if point.durable else " "
                print(f"  {point.kind:7}{mark} {calls:>2}x  {point.key}  [{point.location}]")
    print("\n* its effect outlives a crash right after it (the sweep crashes the service there)")
    return EXIT_OK
