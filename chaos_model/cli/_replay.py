"""``chaos-model replay``: a saved failing program, once or several times, on a fresh stack."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from chaos_model.cli._common import (
    EXIT_OK,
    EXIT_STACK,
    EXIT_VIOLATION,
    UsageError,
    add_stack_options,
    open_stack,
    positive,
)
from chaos_model.cli._experiment import add_experiments_dir


def add_parser(commands: Any) -> None:
    replay = commands.add_parser("replay", help="replay a saved failing program on a fresh stack")
    replay.add_argument("file", type=Path, help="steps.json or the folder that holds it")
    replay.add_argument("--times", type=positive, default=1, help="replays (default 1)")
    add_stack_options(replay)
    replay.add_argument(
        "--save-as",
        default=None,
        metavar="NAME",
        help="also save the program as the named experiment NAME (see `experiment list`)",
    )
    add_experiments_dir(replay)
    replay.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
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
    stack = open_stack(args)
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
