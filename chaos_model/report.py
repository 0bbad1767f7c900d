"""The end-of-run summary table and failure report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from chaos_model.recorder import RunReport
from chaos_model.reporting.writer import replay_command


def print_report(report: RunReport, out: TextIO, *, bugs: Sequence[str] = ()) -> None:
    """The summary; ``bugs`` are the zoo bugs the stack ran with (the replay needs them too)."""
    rows = [
        ("examples", f"{report.examples}"),
        ("steps", f"{report.steps}"),
        ("steps/s", f"{report.steps_per_second:.1f}"),
        ("faults injected", f"{report.faults}"),
        *((f"  {kind}", f"{count}") for kind, count in sorted(report.faults_by_kind.items())),
        ("reset (p50)", f"{report.reset_p50 * 1000:.0f} ms"),
        ("elapsed", f"{report.elapsed:.1f} s"),
        ("violations", f"{report.violations}"),
    ]
    totals = report.coverage.totals()
    if totals["points"]:
        rows.append(
            (
                "fault points",
                f"{totals['points']} reached, {totals['fired']} faulted"
                f" ({totals['point_modes_fired']} point x mode pairs)",
            )
        )
    width = max(len(name) for name, _ in rows)
    out.write("\nchaos-model run summary\n")
    for name, value in rows:
        out.write(f"  {name:<{width}}  {value}\n")
    if report.failure is None:
        out.write("\nno invariant was violated\n")
        return
    failure = report.failure
    kinds = ", ".join(failure.kinds)
    out.write(f"\n{kinds.upper()} VIOLATION\n")
    for line in failure.violations:
        out.write(f"  {line}\n")
    if report.program:
        out.write(f"\nminimal program ({len(failure.steps)} steps):\n")
        for line in report.program.splitlines():
            out.write(f"  {line}\n")
    if report.replays:
        out.write(f"\nreproduced in {report.reproduced} of {report.replays} replays\n")
    if report.flaky:
        out.write("the failure did not reproduce reliably while shrinking (flaky)\n")
    for note in report.notes:
        out.write(f"{note}\n")
    if failure.directory is not None:
        out.write(
            f"saved to {failure.directory} (steps.json, history.json, logs/, test_replay.py)\n"
        )
        out.write(f"replay it: {replay_command(failure.directory, bugs)}\n")
    if report.first_failure is not None and report.first_failure is not failure:
        out.write(f"the original failing run is kept in {report.first_failure.directory}\n")
