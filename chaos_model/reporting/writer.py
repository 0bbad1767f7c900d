"""Writing a run's report folder: ``report.html``, ``summary.json`` and a PNG per timeline."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos_model.adapter import TargetSpec
from chaos_model.recorder import FailureRecord, RunReport
from chaos_model.reporting.browser import HeadlessChromium, find_chromium
from chaos_model.reporting.page import ExampleSection, FailureOutcome, ReportPage, render_page
from chaos_model.reporting.timeline import build_timeline

NO_CHROMIUM = "no PNG of the timeline: chromium is not installed (apt-get install chromium)"


@dataclass
class WrittenReport:
    directory: Path
    html: Path
    summary: Path
    pngs: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def replay_command(directory: Path, bugs: Sequence[str]) -> str:
    bug_options = [part for bug in bugs for part in ("--bug", bug)]
    return shlex.join(["chaos-model", "replay", str(directory), *bug_options])


def write_run_report(
    report: RunReport,
    reports_dir: Path,
    *,
    bugs: Sequence[str] = (),
    seed: int | None = None,
    png: bool = True,
    target: TargetSpec | None = None,
) -> WrittenReport:
    """Write the report of ``report`` into a new folder under ``reports_dir``; ``target``'s
    services are the lanes of the timelines (without it, those the captures show)."""
    directory = _new_folder(reports_dir, report)
    command = None
    if report.failure is not None and report.failure.directory is not None:
        command = replay_command(report.failure.directory, bugs)
    sections = _sections(report, command, target)
    notes: list[str] = []
    if report.failure is not None and report.failure.capture is None:
        notes.append(
            "no timeline was recorded for this failure: " + "; ".join(report.failure.violations)
        )
    page = ReportPage(
        verdict=_verdict(report),
        failed=report.failed,
        summary=_summary_rows(report, bugs, seed),
        sections=sections,
        replay_command=command,
        notes=notes,
        coverage=report.coverage,
    )
    written = WrittenReport(directory, directory / "report.html", directory / "summary.json")
    written.html.write_text(render_page(page), encoding="utf-8")
    if png and sections:
        _render_pngs(written, sections)
    written.summary.write_text(
        json.dumps(_summary(report, bugs, seed, sections, command, written), indent=1)
    )
    return written


def _new_folder(reports_dir: Path, report: RunReport) -> Path:
    outcome = report.failure.invariants[0] if report.failure is not None else "passed"
    base = reports_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{outcome}"
    directory = base
    for number in range(2, 1000):
        try:
            directory.mkdir(parents=True)
            return directory
        except FileExistsError:
            directory = base.with_name(f"{base.name}-{number}")
    raise FileExistsError(f"{base}: too many reports with this name")


def _sections(
    report: RunReport, command: str | None, target: TargetSpec | None = None
) -> list[ExampleSection]:
    sections: list[ExampleSection] = []
    failures: list[tuple[str, FailureRecord]] = []
    if report.failure is not None:
        shrunk = report.first_failure is not None and report.first_failure is not report.failure
        title = (
            "Failing example: the smallest one Hypothesis found" if shrunk else "Failing example"
        )
        failures.append((title, report.failure))
        if shrunk and report.first_failure is not None:
            failures.append(("Failing example: the first one found", report.first_failure))
    for title, record in failures:
        if record.capture is None:
            continue
        outcome = None
        if record is report.failure:
            outcome = FailureOutcome(
                program=report.program or "",
                steps=len(record.steps),
                reproduced=report.reproduced,
                replays=report.replays,
                flaky=report.flaky,
                replay_command=command,
            )
        sections.append(
            ExampleSection(
                title,
                f"timeline-{len(sections) + 1}",
                build_timeline(record.capture, target),
                outcome,
            )
        )
    if report.passing_example is not None:
        sections.append(
            ExampleSection(
                "Passing example (the last one run)",
                f"timeline-{len(sections) + 1}",
                build_timeline(report.passing_example, target),
            )
        )
    return sections


def _render_pngs(written: WrittenReport, sections: list[ExampleSection]) -> None:
    chromium = find_chromium()
    if chromium is None:
        written.notes.append(NO_CHROMIUM)
        return
    try:
        with HeadlessChromium(chromium) as browser:
            browser.open(written.html)
            for section in sections:
                path = written.directory / f"{section.element_id}.png"
                browser.screenshot(f"#{section.element_id}", path)
                written.pngs.append(path)
    except Exception as error:  # noqa: BLE001 - the PNG is optional, the page is already written
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        written.notes.append(f"no PNG of the timeline: {first_line}")


def _verdict(report: RunReport) -> str:
    if report.failure is None:
        return f"PASSED: no invariant was violated in {report.examples} examples"
    kinds = ", ".join(report.failure.kinds)
    return f"FAILED: {', '.join(report.failure.invariants)} ({kinds})"


def _summary_rows(
    report: RunReport, bugs: Sequence[str], seed: int | None
) -> list[tuple[str, str]]:
    rows = [
        ("examples", str(report.examples)),
        ("steps", f"{report.steps} ({report.steps_per_second:.1f}/s)"),
        ("faults injected", str(report.faults)),
        *((f"faults: {kind}", str(count)) for kind, count in sorted(report.faults_by_kind.items())),
        ("violations", str(report.violations)),
        ("elapsed", f"{report.elapsed:.1f} s"),
        ("seed", "random" if seed is None else str(seed)),
    ]
    if bugs:
        rows.append(("bugs switched on", ", ".join(bugs)))
    if report.failure is not None and report.failure.directory is not None:
        rows.append(("failure folder", str(report.failure.directory)))
    if report.hypothesis_error:
        rows.append(("hypothesis", report.hypothesis_error))
    return rows


def _summary(
    report: RunReport,
    bugs: Sequence[str],
    seed: int | None,
    sections: list[ExampleSection],
    command: str | None,
    written: WrittenReport,
) -> dict[str, Any]:
    failure: dict[str, Any] | None = None
    if report.failure is not None:
        failure = {
            "invariants": report.failure.invariants,
            "kinds": report.failure.kinds,
            "violations": report.failure.violations,
            "program": report.program,
            "program_steps": len(report.failure.steps),
            "reproduced": report.reproduced,
            "replays": report.replays,
            "flaky": report.flaky,
            "directory": None
            if report.failure.directory is None
            else str(report.failure.directory),
            "replay_command": command,
        }
    return {
        "outcome": "failed" if report.failed else "passed",
        "examples": report.examples,
        "steps": report.steps,
        "faults": report.faults,
        "faults_by_kind": report.faults_by_kind,
        "violations": report.violations,
        "elapsed_seconds": round(report.elapsed, 3),
        "seed": seed,
        "bugs": list(bugs),
        "failure": failure,
        "coverage": report.coverage.to_json(),
        "timelines": [
            {
                "id": section.element_id,
                "title": section.title,
                "failed": section.timeline.failed,
                "invariants": [fired.name for fired in section.timeline.fired],
                "steps": len(section.timeline.steps),
                "faults": [band.label for band in section.timeline.bands],
                "messages": len(section.timeline.messages),
                "seconds": round(section.timeline.duration, 3),
                "metrics": None
                if section.timeline.metrics is None
                else section.timeline.metrics.to_json(),
            }
            for section in sections
        ],
        "report": written.html.name,
        "pngs": [path.name for path in written.pngs],
        "notes": written.notes,
    }
