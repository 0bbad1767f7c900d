"""``chaos-model experiment list|run``: named experiments, fixed scenarios run with one command."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Any

from chaos_model.cli._common import (
    EXIT_OK,
    EXIT_STACK,
    EXIT_VIOLATION,
    Parser,
    add_stack_options,
    add_target_option,
    open_stack,
)
from chaos_model.experiments import BadExperiment, Experiment, check_target
from chaos_model.experiments._store import ENV_DIR, TargetRef, all_experiments, find

DEFAULT_RESULTS = Path(".chaos-model") / "experiments"


def add_experiments_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--experiments-dir",
        type=Path,
        default=None,
        help=f"the folder of saved experiments (default ${ENV_DIR} or ./chaos-experiments)",
    )


def add_parser(commands: Any) -> None:
    experiment = commands.add_parser(
        "experiment", help="named chaos experiments: fixed scenarios run with one command"
    )
    sub = experiment.add_subparsers(dest="experiment_command", required=True, parser_class=Parser)
    listing = sub.add_parser("list", help="every experiment with its hypothesis")
    add_target_option(listing)
    add_experiments_dir(listing)
    listing.set_defaults(handler=list_command)
    run = sub.add_parser("run", help="run one experiment (or --all) on a fresh local stack")
    run.add_argument("name", nargs="?", default=None, help="the experiment (see `list`)")
    run.add_argument("--all", action="store_true", help="run every experiment, one after another")
    add_stack_options(run, attach_target=False)
    run.add_argument(
        "--results-dir",
        type=Path,
        default=DEFAULT_RESULTS,
        help=f"where NAME.json and NAME.txt are written (default {DEFAULT_RESULTS})",
    )
    run.add_argument(
        "--markdown",
        type=Path,
        default=None,
        metavar="FILE",
        help="then write every experiment with its last result as Markdown to FILE",
    )
    run.add_argument("--failures-dir", type=Path, default=Path("chaos-failures"))
    add_experiments_dir(run)
    run.set_defaults(handler=run_command)


def list_command(args: argparse.Namespace) -> int:
    for experiment in all_experiments(args.experiments_dir, args.target):
        origin = "" if experiment.origin == "built-in" else f"  [saved from {experiment.origin}]"
        print(f"{experiment.name}{origin}")
        for line in textwrap.wrap(experiment.hypothesis, 92):
            print(f"    {line}")
    return EXIT_OK


def run_command(args: argparse.Namespace) -> int:
    from chaos_model.experiments._docs import render_markdown
    from chaos_model.experiments._run import (
        read_results,
        render_text,
        run_experiment,
        write_result,
    )

    if args.all == (args.name is not None):
        raise BadExperiment(
            "name one experiment, or pass --all (see `chaos-model experiment list`)"
        )
    if args.attach is None:  # checked before any stack starts; an owned stack has its target
        _choose(args, args.target)
    if args.markdown is not None and not args.markdown.parent.is_dir():
        raise BadExperiment(f"--markdown: no folder {args.markdown.parent}")
    stack = open_stack(args)
    if stack is None:
        return EXIT_STACK
    differs = 0
    with stack:
        target = stack.target
        chosen = _choose(args, target)
        log_dirs = stack.log_paths() if hasattr(stack, "log_paths") else {}
        for experiment in chosen:
            print(f"running {experiment.name} ...", file=sys.stderr, flush=True)
            result = run_experiment(
                experiment, stack, failures_dir=args.failures_dir, log_dirs=log_dirs
            )
            written = write_result(experiment, result, args.results_dir)
            print(render_text(experiment, result))
            print(f"result: {written} (and {written.with_suffix('.txt').name})\n")
            differs += int(not result.as_expected)
    if args.markdown is not None:
        experiments = all_experiments(args.experiments_dir, target)
        text = render_markdown(experiments, read_results(args.results_dir), target)
        args.markdown.write_text(text)
        print(f"wrote {args.markdown}")
    total = len(chosen)
    print(f"{total - differs} of {total} experiment(s) behaved as expected")
    return EXIT_VIOLATION if differs else EXIT_OK


def _choose(args: argparse.Namespace, target: TargetRef) -> list[Experiment]:
    """The experiments ``args`` name, each checked against ``target``."""
    from chaos_model.adapter import TargetSpec, load_target

    chosen: list[Experiment] = (
        all_experiments(args.experiments_dir, target)
        if args.all
        else [find(args.name, args.experiments_dir, target)]
    )
    spec = target if isinstance(target, TargetSpec) else load_target(target)
    for experiment in chosen:
        check_target(experiment, spec)
    return chosen
