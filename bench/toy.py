"""The toy target's two planted weaknesses, found from its adapter alone: the detection numbers
on a service whose code has no failpoint and knows nothing of chaos-model.

The toy (``tests/toy_target/``) publishes each task straight after its commit, with no outbox,
so a task published while no worker listens (or while NATS restarts) is lost and its message
stays ``new``; and its worker sends a publish again after a timeout, to an extraction that
stores its facts before its status guard, so one ambiguous publish stores every fact twice.

A run stops at its first finding, and the first weakness is the likelier one; so the second is
measured with the liveness invariants skipped (``--skip-invariants``, as a team fixing the
first would run it). For each weakness and seed: a run with every fault kind but the
hand-placed failpoints (the toy has none), the time to the first finding, the shrunk program's
length and how often it reproduced. Prints a table, writes ``bench/results/toy.json``.

    python bench/toy.py                   # both weaknesses, 5 seeds, 120 s each
    python bench/toy.py --seeds 1 --budget 60
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info, write_json
from detect import SHRINK_BUDGET, _bug_result, _config, _say

from chaos_model.adapter import load_adapter
from chaos_model.cli import parse_duration
from chaos_model.invariants import LIVENESS
from chaos_model.runner import run
from chaos_model.stack import LocalStack

ADAPTER = Path(__file__).resolve().parent.parent / "tests" / "toy_target" / "chaos-target.toml"
#: the issue's targets for the toy: both found, shrunk to at most 3 steps, reproduced >= 2/3
MAX_STEPS = 3
REPRODUCTION_TARGET = 2 / 3


@dataclasses.dataclass(frozen=True)
class Weakness:
    name: str
    #: the invariant a finding of it violates
    invariant: str
    #: invariants not checked while looking for it
    skipped: tuple[str, ...] = ()


WEAKNESSES = (
    Weakness("no_outbox", "accepted_updates_complete"),
    Weakness(
        "publish_sent_again",
        "one_score_and_extraction_per_message",
        skipped=tuple(invariant.name for invariant in LIVENESS),
    ),
)


def measure(seeds: int, budget: float, steps: int, failures: Path) -> list[dict[str, Any]]:
    spec = load_adapter(ADAPTER)
    runs: list[dict[str, Any]] = []
    with LocalStack(spec) as stack:
        for weakness in WEAKNESSES:
            for seed in range(1, seeds + 1):
                config = dataclasses.replace(
                    _config(seed, budget, failures, steps, SHRINK_BUDGET),
                    skip_invariants=weakness.skipped,
                )
                report = run(stack, config, log_dirs=stack.log_paths())
                result = _bug_result(weakness.name, seed, report)
                result["this_weakness"] = weakness.invariant in result["invariants"]
                runs.append(result)
                _say(f"{weakness.name} seed {seed}: {_line(result)}")
    return runs


def _line(result: dict[str, Any]) -> str:
    if not result["found"]:
        return "NOT found" + (f" ({result['error']})" if result["error"] else "")
    which = "" if result["this_weakness"] else " (ANOTHER finding)"
    return (
        f"found in {result['seconds_to_first_violation']:.1f}s{which}"
        f" ({', '.join(result['invariants'])}), shrunk to {result['shrunk_length']} steps,"
        f" reproduced {result['reproduced']}/{result['replays']}"
    )


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for weakness in WEAKNESSES:
        mine = [r for r in runs if r["bug"] == weakness.name]
        found = [r for r in mine if r["found"] and r["this_weakness"]]
        times = [r["seconds_to_first_violation"] for r in found]
        lengths = [r["shrunk_length"] for r in found]
        reproduced = sum(r["reproduced"] for r in found)
        replays = sum(r["replays"] for r in found)
        rows.append(
            {
                "weakness": weakness.name,
                "found": len(found),
                "seeds": len(mine),
                "median_seconds": statistics.median(times) if times else None,
                "shrunk_lengths": lengths,
                "reproduced": reproduced,
                "replays": replays,
                "meets_target": bool(found)
                and len(found) == len(mine)
                and max(lengths) <= MAX_STEPS
                and reproduced >= REPRODUCTION_TARGET * replays,
            }
        )
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print("| weakness | found | median s | shrunk steps | reproduced | target met |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        median = f"{row['median_seconds']:.1f}" if row["median_seconds"] is not None else "-"
        lengths = ", ".join(map(str, row["shrunk_lengths"])) or "-"
        print(
            f"| {row['weakness']} | {row['found']}/{row['seeds']} | {median} | {lengths}"
            f" | {row['reproduced']}/{row['replays']} | {'yes' if row['meets_target'] else 'no'} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=parse_duration, default=120.0, help="per run, e.g. 2m")
    parser.add_argument("--steps", type=int, default=10, help="steps per example")
    parser.add_argument("--out", default="toy.json", help="file name under bench/results/")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="chaos-toy-bench-") as folder:
        runs = measure(args.seeds, args.budget, args.steps, Path(folder))
    rows = summarise(runs)
    print_table(rows)
    write_json(args.out, {"machine": machine_info(), "runs": runs, "summary": rows})
    return 0 if all(row["meets_target"] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
