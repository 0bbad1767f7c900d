"""Per-run statistics: which faults and operations exercised each invariant, and what failed.

Every run writes one JSON file into ``<failures dir>/runs/`` (``chaos-failures/runs/`` by
default; each nightly lane into ``chaos-failures/<worker>/runs/``); ``chaos-model invariants
--markdown --runs DIR`` counts from the most recent of them in DIR and the ``runs/`` folders
below it.

An invariant is *exercised* by a fault kind or an operation in an example when it was checked in
that example and the example's program included that fault or operation: safety invariants are
checked after every step of every example, liveness invariants only in the examples that reached
the final heal and quiescence wait.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaos_model.invariants import ALL

if TYPE_CHECKING:
    from chaos_model.example import ExampleView
    from chaos_model.recorder import FailureRecord, RunRecorder

#: rules that only set up an example (no operation, no fault): not counted
SETUP_RULES = frozenset({"choose_faults"})
FAULT_RULES = frozenset(
    {
        "pause",
        "kill",
        "stop",
        "partition",
        "network",
        "refuse_connections",
        "latency_ramp",
        "terminate_connections",
        "llm_fault",
        "break_llm",
        "failpoint",
        "point",
        "heal_one",
        "heal_all",
    }
)
KEEP_RUNS = 50


@dataclass
class InvariantExercise:
    """Counts, per invariant, of the examples it was checked in, by fault kind and operation."""

    examples: int = 0
    liveness_examples: int = 0
    faults: dict[str, Counter[str]] = field(default_factory=dict)
    operations: dict[str, Counter[str]] = field(default_factory=dict)
    checked: Counter[str] = field(default_factory=Counter)
    _liveness_checks_seen: int = 0

    def record(self, machine: ExampleView, liveness_checks: int) -> None:
        """One finished example; ``liveness_checks`` counts the quiescence waits so far."""
        liveness = liveness_checks > self._liveness_checks_seen
        self._liveness_checks_seen = liveness_checks
        if not machine.steps:
            return
        self.examples += 1
        self.liveness_examples += int(liveness)
        kinds = {
            str((op["value"] or {}).get("kind"))
            for op in machine.history.to_json()
            if op["process"] == "nemesis" and op["f"] == "fault" and op["type"] == "invoke"
        }
        rules = {step["rule"] for step in machine.steps} - SETUP_RULES - FAULT_RULES
        for invariant in ALL:
            if invariant.kind == "liveness" and not liveness:
                continue
            self.checked[invariant.name] += 1
            self.faults.setdefault(invariant.name, Counter()).update(kinds)
            self.operations.setdefault(invariant.name, Counter()).update(rules)


def write_run_stats(
    directory: Path,
    exercise: InvariantExercise,
    failures: list[FailureRecord],
    summary: dict[str, Any],
) -> Path:
    """Write this run's statistics as ``<directory>/<timestamp>.json``; keep the latest files."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    path = directory / f"{stamp}.json"
    suffix = 1
    while path.exists():
        suffix += 1
        path = directory / f"{stamp}-{suffix}.json"
    data = {
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **summary,
        "examples_checked": exercise.examples,
        "liveness_examples": exercise.liveness_examples,
        "invariants": {
            invariant.name: {
                "kind": invariant.kind,
                "checked_examples": exercise.checked.get(invariant.name, 0),
                "faults": dict(sorted(exercise.faults.get(invariant.name, Counter()).items())),
                "operations": dict(
                    sorted(exercise.operations.get(invariant.name, Counter()).items())
                ),
            }
            for invariant in ALL
        },
        "failures": [
            {
                "invariants": record.invariants,
                "violations": record.violations,
                "directory": str(record.directory) if record.directory else None,
            }
            for record in failures
        ],
    }
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    for old in sorted(directory.glob("*.json"))[:-KEEP_RUNS]:
        old.unlink(missing_ok=True)
    return path


def write_recorder_stats(
    directory: Path, recorder: RunRecorder, *, seed: int | None, bugs: list[str]
) -> Path | None:
    """Write what ``recorder`` counted as one run's statistics (None if it cannot be written)."""
    failures = [
        record
        for record in (recorder.first_failure, recorder.last_failure)
        if record is not None and record.directory is not None
    ]
    if len(failures) == 2 and failures[0] is failures[1]:
        failures.pop()
    summary = {
        "examples": recorder.examples,
        "steps": recorder.steps,
        "seed": seed,
        "bugs": bugs,
        "faults_by_kind": dict(recorder.faults_by_kind),
        "violations": recorder.violations,
    }
    try:
        return write_run_stats(directory, recorder.exercise, failures, summary)
    except OSError:
        return None


def read_run_stats(directory: Path, last: int = 10) -> list[dict[str, Any]]:
    """The ``last`` most recent run statistics, oldest first: the files in ``directory`` and in
    any ``runs/`` folder below it (a nightly's ``chaos-failures/gw0/runs/``, ...)."""
    if not directory.is_dir():
        return []
    paths = {
        path
        for path in directory.rglob("*.json")
        if path.parent == directory or path.parent.name == "runs"
    }
    runs: list[dict[str, Any]] = []
    for path in paths:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("invariants"), dict):
            data["file"] = str(path)
            runs.append(data)
    runs.sort(key=lambda run: (str(run.get("finished", "")), run["file"]))
    return runs[-last:]
