"""chaos-model next to the chaos-monkey baseline, on the same bugs, seeds and budget.

For each bug and seed, on one local stack with the bug switched on, one after the other: a
chaos-model run as ``bench/detect.py`` runs it (the opening sweep, then the search, then
shrinking), with the hand-placed failpoints switched off (every other fault kind on, the
automatic fault points included), and the monkey of ``bench/monkey.py`` (random kills, pauses,
stops, partitions and network toxics under a steady Telegram load, judged at the end of each
round, no shrinking) with the same seed and budget. Then the monkey alone on the correct
pipeline: it must find nothing. Prints one table and writes ``bench/results/compare.json``.

    python bench/compare.py                           # every bug, 5 seeds, 120 s each
    python bench/compare.py --bugs core_nats --seeds 1 --budget 60
    python bench/compare.py --markdown bench/results/compare.json   # for docs/detection.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info, write_json
from detect import SHRINK_BUDGET, _bug_result, _config, _say
from monkey import MonkeyConfig, describe, run_monkey

from chaos_model.cli import parse_duration
from chaos_model.config import ALL_FAULT_KINDS, ChaosConfig
from chaos_model.runner import run
from chaos_model.stack import LocalStack
from pipeline_app.bugs import KNOWN_BUGS

#: chaos-model's fault kinds here: everything but the failpoints placed by hand in the
#: pipeline's code, which a team starting out has not written and the monkey cannot use
MODEL_FAULTS = tuple(kind for kind in ALL_FAULT_KINDS if kind != "failpoint")
#: the monkey's median time to detect must be at least this many times chaos-model's
RATIO_TARGET = 5.0


def model_config(
    seed: int, budget: float, failures: Path, steps: int, shrink: float
) -> ChaosConfig:
    return dataclasses.replace(_config(seed, budget, failures, steps, shrink), faults=MODEL_FAULTS)


# ---------------------------------------------------------------------- running
def compare(
    bugs: Sequence[str],
    seeds: int,
    budget: float,
    steps: int,
    failures: Path,
    shrink: float,
    monkey: MonkeyConfig,
) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for bug in bugs:
        with LocalStack(bugs=(bug,)) as stack:
            for seed in range(1, seeds + 1):
                config = model_config(seed, budget, failures, steps, shrink)
                report = run(stack, config, log_dirs=stack.log_paths())
                model = _bug_result(bug, seed, report)
                _say(f"{bug} seed {seed}: chaos-model {_model_line(model)}")
                baseline = run_monkey(stack, seed, budget, monkey)
                _say(f"{bug} seed {seed}: {describe(baseline)}")
                runs.append(
                    {"bug": bug, "seed": seed, "chaos_model": model, "monkey": baseline.to_json()}
                )
    return runs


def _model_line(result: dict[str, Any]) -> str:
    if not result["found"]:
        return "NOT found" + (f" ({result['error']})" if result["error"] else "")
    return (
        f"found in {result['seconds_to_first_violation']:.1f}s"
        f" ({', '.join(result['invariants'])}), shrunk to {result['shrunk_length']} steps"
    )


def monkey_on_correct_pipeline(budget: float, monkey: MonkeyConfig) -> dict[str, Any]:
    """The baseline must not cry wolf: the same budget on the correct pipeline."""
    with LocalStack() as stack:
        result = run_monkey(stack, 1, budget, monkey)
    _say(f"correct pipeline: {describe(result)}")
    return result.to_json()


# ---------------------------------------------------------------------- the table
@dataclass(frozen=True)
class BugRow:
    """One bug's line of the table: each tool's detections, times and what a person reads."""

    bug: str
    seeds: int
    model_found: int
    model_median: float | None
    #: steps of chaos-model's shrunk program, median over the seeds that found the bug
    program_length: float | None
    monkey_found: int
    monkey_median: float | None
    #: entries of the monkey's failing round (updates sent, faults injected), median
    log_length: float | None
    #: seeds the monkey did not find the bug with
    monkey_missed: tuple[int, ...]
    model_missed: tuple[int, ...]

    @property
    def ratio(self) -> float | None:
        """The monkey's median time to detect over chaos-model's, when both found the bug."""
        if self.model_median is None or self.monkey_median is None:
            return None
        return self.monkey_median / max(self.model_median, 0.01)


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def rows(runs: Sequence[dict[str, Any]]) -> list[BugRow]:
    by_bug: dict[str, list[dict[str, Any]]] = {}
    for entry in runs:
        by_bug.setdefault(entry["bug"], []).append(entry)
    table: list[BugRow] = []
    for bug, entries in by_bug.items():
        model = [e for e in entries if e["chaos_model"]["found"]]
        monkey = [e for e in entries if e["monkey"]["found"]]
        table.append(
            BugRow(
                bug=bug,
                seeds=len(entries),
                model_found=len(model),
                model_median=_median(
                    [e["chaos_model"]["seconds_to_first_violation"] for e in model]
                ),
                program_length=_median([e["chaos_model"]["shrunk_length"] for e in model]),
                monkey_found=len(monkey),
                monkey_median=_median([e["monkey"]["seconds_to_first_violation"] for e in monkey]),
                log_length=_median([e["monkey"]["log_length"] for e in monkey]),
                monkey_missed=tuple(e["seed"] for e in entries if not e["monkey"]["found"]),
                model_missed=tuple(e["seed"] for e in entries if not e["chaos_model"]["found"]),
            )
        )
    return table


def assess(table: Sequence[BugRow], correct: dict[str, Any] | None) -> list[tuple[str, bool, str]]:
    """Each target of the comparison: (target, met, what was measured)."""
    both = [row for row in table if row.ratio is not None]
    verdicts = [
        (
            f"median time to detect >= {RATIO_TARGET:.0f}x lower than the monkey's, on every bug"
            " both find",
            bool(both) and all((row.ratio or 0) >= RATIO_TARGET for row in both),
            ", ".join(f"{row.bug} {row.ratio:.1f}x" for row in both) or "no bug both find",
        )
    ]
    if correct is not None:
        verdicts.append(
            (
                "the monkey finds nothing on the correct pipeline",
                not correct["found"] and not correct["error"],
                correct["error"] or ", ".join(correct["invariants"]) or "nothing found",
            )
        )
    return verdicts


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _count(value: float | None) -> str:
    """A median of counts: whole unless it fell between two."""
    return "-" if value is None else f"{value:g}"


def _seeds(seeds: tuple[int, ...]) -> str:
    return ", ".join(map(str, seeds)) or "-"


def overall_ratio(table: Sequence[BugRow]) -> float | None:
    """The median of the per-bug ratios, over the bugs both tools find."""
    ratios = [row.ratio for row in table if row.ratio is not None]
    return statistics.median(ratios) if ratios else None


def text_table(table: Sequence[BugRow]) -> str:
    lines = [
        f"{'':24} {'chaos-model':>27}   {'monkey':>27}",
        f"{'bug':24} {'found':>7} {'median s':>9} {'program':>9}   {'found':>7} {'median s':>9}"
        f" {'log':>9} {'ratio':>7}  monkey missed seeds",
    ]
    for row in table:
        lines.append(
            f"{row.bug:24} {row.model_found:>3}/{row.seeds:<3} {_number(row.model_median):>9}"
            f" {_count(row.program_length):>9}   {row.monkey_found:>3}/{row.seeds:<3}"
            f" {_number(row.monkey_median):>9} {_count(row.log_length):>9}"
            f" {_number(row.ratio) + 'x' if row.ratio is not None else '-':>7}"
            f"  {_seeds(row.monkey_missed)}"
        )
    lines.append(f"\nmedian ratio over the bugs both find: {_ratio_text(overall_ratio(table))}")
    lines.append(f"the monkey's misses: {_misses(table)}")
    return "\n".join(lines)


def _ratio_text(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.1f}x"


def _misses(table: Sequence[BugRow]) -> str:
    missed = [f"{row.bug} ({_which_seeds(row)})" for row in table if row.monkey_missed]
    return ", ".join(missed) or "none"


def _which_seeds(row: BugRow) -> str:
    return "every seed" if not row.monkey_found else f"seeds {_seeds(row.monkey_missed)}"


def markdown(data: dict[str, Any]) -> str:
    """The comparison as the Markdown table of docs/detection.md."""
    table = rows(data.get("runs", []))
    lines = [
        "| bug | chaos-model found | median s | program steps | monkey found | median s"
        " | monkey log entries | monkey / chaos-model |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in table:
        lines.append(
            f"| `{row.bug}` | {row.model_found}/{row.seeds} | {_number(row.model_median)}"
            f" | {_count(row.program_length)} | {row.monkey_found}/{row.seeds}"
            f" | {_number(row.monkey_median)} | {_count(row.log_length)}"
            f" | {_ratio_text(row.ratio)} |"
        )
    lines += [
        "",
        f"Median of the ratios over the bugs both find: **{_ratio_text(overall_ratio(table))}**."
        f" The monkey's misses: {_misses(table)}.",
    ]
    correct = data.get("correct")
    if correct is not None:
        lines.append(
            f"The monkey on the correct pipeline, same budget: {correct['rounds']} rounds,"
            f" {correct['faults']} faults, {'a violation' if correct['found'] else 'no violation'}."
        )
    if "targets" in data:
        lines += ["", "| target | status | measured |", "|---|---|---|"]
        for target in data["targets"]:
            status = "met" if target["met"] else "**missed**"
            lines.append(f"| {target['target']} | {status} | {target['measured']} |")
    return "\n".join(lines)


def print_targets(verdicts: Sequence[tuple[str, bool, str]]) -> None:
    print("\ntargets:")
    for target, met, measured in verdicts:
        print(f"  {'met   ' if met else 'MISSED'}  {target}: {measured}")


# ---------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bugs", default=",".join(KNOWN_BUGS), help="comma-separated bug names")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=parse_duration, default=120.0, help="per run and tool")
    parser.add_argument("--steps", type=int, default=10, help="chaos-model's steps per example")
    parser.add_argument(
        "--shrink-budget", type=parse_duration, default=SHRINK_BUDGET, help="per found bug"
    )
    parser.add_argument(
        "--round",
        type=parse_duration,
        default=MonkeyConfig.round_seconds,
        help="seconds of load and faults in each of the monkey's rounds",
    )
    parser.add_argument(
        "--no-correct", action="store_true", help="skip the monkey on the correct pipeline"
    )
    parser.add_argument("--out", default="compare.json", help="file name under bench/results/")
    parser.add_argument(
        "--markdown",
        type=Path,
        default=None,
        metavar="JSON",
        help="print the table of an earlier result file as Markdown, run nothing",
    )
    args = parser.parse_args(argv)
    if args.markdown is not None:
        try:
            earlier = json.loads(args.markdown.read_text())
        except (OSError, ValueError) as error:
            parser.error(f"cannot read {args.markdown}: {error}")
        print(markdown(earlier))
        return 0
    bugs = [name.strip() for name in args.bugs.split(",") if name.strip()]
    unknown = sorted(set(bugs) - set(KNOWN_BUGS))
    if unknown:
        parser.error(f"unknown bug(s): {', '.join(unknown)}")
    monkey = MonkeyConfig(round_seconds=args.round)
    failures = Path(tempfile.mkdtemp(prefix="chaos-compare-"))
    data: dict[str, Any] = {
        "machine": machine_info(),
        "budget_seconds": args.budget,
        "seeds": args.seeds,
        "model_faults": list(MODEL_FAULTS),
        "monkey_config": dataclasses.asdict(monkey),
    }
    data["runs"] = compare(
        bugs, args.seeds, args.budget, args.steps, failures, args.shrink_budget, monkey
    )
    data["correct"] = None if args.no_correct else monkey_on_correct_pipeline(args.budget, monkey)
    table = rows(data["runs"])
    verdicts = assess(table, data["correct"])
    data["targets"] = [
        {"target": target, "met": met, "measured": measured} for target, met, measured in verdicts
    ]
    path = write_json(args.out, data)
    print()
    print(text_table(table))
    print_targets(verdicts)
    print(f"\nwritten to {path}")
    return 0 if all(met for _, met, _ in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
