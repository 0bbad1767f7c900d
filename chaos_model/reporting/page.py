"""The report page: one self-contained HTML file (inline CSS, JS and SVG; nothing fetched)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from html import escape

from chaos_model.points import CoverageTable
from chaos_model.reporting.answers import ANSWERS
from chaos_model.reporting.metrics import ExampleMetrics, describe
from chaos_model.reporting.svg import (
    ANSWER_COLOURS,
    STAGE_COLOURS,
    fault_colour,
    render_svg,
)
from chaos_model.reporting.timeline import FiredInvariant, Timeline

LOG_LINES_SHOWN = 20
_INLINE_CODE = re.compile(r"``(.+?)``")


@dataclass(frozen=True)
class FailureOutcome:
    """What became of the run's failure after the timeline was recorded."""

    program: str
    steps: int
    reproduced: int
    replays: int
    flaky: bool
    replay_command: str | None


@dataclass(frozen=True)
class ExampleSection:
    title: str
    element_id: str
    timeline: Timeline
    #: set on the section of the run's final (shrunk) failure
    outcome: FailureOutcome | None = None


@dataclass(frozen=True)
class ReportPage:
    verdict: str
    failed: bool
    summary: list[tuple[str, str]]
    sections: list[ExampleSection]
    replay_command: str | None = None
    notes: list[str] = field(default_factory=list)
    coverage: CoverageTable | None = None


def render_page(page: ReportPage) -> str:
    verdict_class = "verdict failed" if page.failed else "verdict passed"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>chaos-model report: {escape(page.verdict)}</title>",
        f"<style>{CSS}</style></head><body>",
        "<header><h1>chaos-model run report</h1>",
        f'<p class="{verdict_class}">{escape(page.verdict)}</p>',
    ]
    if page.replay_command:
        parts.append(_command_block("Replay the failure", page.replay_command, "replay-top"))
    parts.append(_table(["", ""], [list(row) for row in page.summary], css="summary"))
    parts.extend(f'<p class="note">{escape(note)}</p>' for note in page.notes)
    parts.append("</header>")
    if not page.sections:
        parts.append('<p class="note">No example timeline was recorded in this run.</p>')
    parts.extend(_section(section) for section in page.sections)
    if page.coverage is not None and len(page.coverage):
        parts.append(_coverage(page.coverage))
    parts.append(f"<script>{JS}</script></body></html>")
    return "\n".join(parts)


def _coverage(table: CoverageTable) -> str:
    """The fault x point table: each point the run reached, the modes it was faulted in (fired
    of armed) and what the examples where it fired found."""
    totals = table.totals()
    rows = [
        [
            row.point.service,
            row.point.key,
            row.point.location,
            str(row.reached_examples),
            row.modes_text,
            row.found_text,
        ]
        for row in table.by_interest()
    ]
    head = ["service", "point", "where", "reached", "faulted: fired/armed", "found"]
    return "\n".join(
        [
            '<section class="coverage" id="coverage">',
            "<h2>Fault points</h2>",
            f'<p class="note">{totals["points"]} points reached, {totals["fired"]} faulted,'
            f" {totals['with_findings']} with a finding.</p>",
            _table(head, rows, css="coverage"),
            "</section>",
        ]
    )


def _section(section: ExampleSection) -> str:
    timeline = section.timeline
    parts = [f'<section class="example" id="{section.element_id}-section">']
    parts.append(f"<h2>{escape(section.title)}</h2>")
    parts.extend(_fired_box(fired) for fired in timeline.fired)
    parts.append(f'<figure class="timeline-figure" id="{section.element_id}">')
    parts.append(f"<figcaption>{escape(_caption(section))}</figcaption>")
    parts.append('<div class="timeline-scroll">')
    parts.append(render_svg(timeline, f"{section.element_id}-svg"))
    parts.append("</div>")
    parts.append(_legend(timeline))
    parts.append("</figure>")
    if timeline.metrics is not None:
        parts.append(_metrics(timeline.metrics, section.element_id))
    parts.extend(f'<p class="note">{escape(note)}</p>' for note in timeline.notes)
    parts.append("<h3>Steps of this example</h3>")
    rows = [[str(step.number), f"{step.time:.2f}s", step.call] for step in timeline.steps]
    parts.append(_table(["#", "at", "step"], rows, css="steps", row_attr="data-step"))
    outcome = section.outcome
    if outcome is not None:
        parts.append(f"<h3>Shrunk program ({outcome.steps} steps)</h3>")
        parts.append(f'<pre class="program">{escape(outcome.program)}</pre>')
        rate = f"Reproduced in {outcome.reproduced} of {outcome.replays} replays"
        if not outcome.replays:
            rate = "Not replayed"
        if outcome.flaky:
            rate += " (flaky while shrinking)"
        parts.append(f'<p class="reproduction">{escape(rate)}</p>')
        if outcome.replay_command:
            parts.append(
                _command_block("Replay it", outcome.replay_command, f"{section.element_id}-replay")
            )
    else:
        parts.append("<h3>Program of this example</h3>")
        parts.append(f'<pre class="program">{escape(timeline.program)}</pre>')
    parts.append(_logs(timeline))
    parts.append("</section>")
    return "\n".join(parts)


def _caption(section: ExampleSection) -> str:
    timeline = section.timeline
    counts = (
        (len(timeline.steps), "step"),
        (len(timeline.bands), "fault"),
        (len(timeline.answers), "webhook answer"),
        (len(timeline.messages), "message"),
    )
    parts = [f"{n} {noun}{'' if n == 1 else 's'}" for n, noun in counts]
    return ", ".join([*parts, f"{timeline.duration:.1f}s"])


def _fired_box(fired: FiredInvariant) -> str:
    parts = ['<div class="fired">']
    parts.append(
        f'<p class="fired-name"><span class="kind">{escape(fired.kind)}</span>'
        f" {escape(fired.name)}</p>"
    )
    if fired.explanation:
        text = _INLINE_CODE.sub(r"<code>\1</code>", escape(fired.explanation))
        parts.append(f'<p class="explanation">{text}</p>')
    parts.append(f'<p class="detail">{escape(fired.detail)}</p>')
    if fired.offending_rows:
        rows = [
            [
                str(row.id),
                str(row.update_id),
                row.stage,
                "" if row.score is None else f"{row.score:g}",
                row.failure_reason or "",
            ]
            for row in fired.offending_rows
        ]
        parts.append("<p>Offending rows (messages table, when the example ended):</p>")
        parts.append(_table(["id", "update_id", "stage", "score", "failure_reason"], rows, "rows"))
    if fired.unstored_updates:
        missing = ", ".join(str(update_id) for update_id in fired.unstored_updates)
        parts.append(f'<p class="unstored">Named but not stored: update {escape(missing)}</p>')
    parts.append("</div>")
    return "\n".join(parts)


def _metrics(metrics: ExampleMetrics, element_id: str) -> str:
    """The example's measurements; the pending work is drawn on the timeline's own lane."""
    rows = [[name, value] for name, value in describe(metrics)]
    return (
        f'<div class="metrics" id="{element_id}-metrics"><h3>Measured in this example</h3>'
        + _table(["", ""], rows, css="metrics")
        + "</div>"
    )


def _legend(timeline: Timeline) -> str:
    items: list[str] = []
    for band in timeline.bands:
        span = (
            f"at {band.start:.2f}s"
            if band.instant
            else f"{band.start:.2f}s to {band.end:.2f}s, {band.ended_by}"
        )
        items.append(
            f'<li class="band-item"><span class="swatch" style="background:'
            f'{fault_colour(band.kind)}"></span>{escape(band.label)}'
            f' <span class="muted">({escape(", ".join(band.services))}; {span})</span></li>'
        )
    counts = Counter(answer.answer for answer in timeline.answers)
    for answer in ANSWERS:
        items.append(
            f'<li><span class="dot" style="background:{ANSWER_COLOURS[answer]}"></span>'
            f"webhook {escape(answer)}: {counts.get(answer, 0)}</li>"
        )
    for stage, colour in STAGE_COLOURS.items():
        items.append(f'<li><span class="swatch" style="background:{colour}"></span>{stage}</li>')
    return f'<ul class="legend">{"".join(items)}</ul>'


def _logs(timeline: Timeline) -> str:
    if not timeline.log_tails:
        return ""
    parts = ["<h3>Service logs: the last lines logged while the example ran</h3>"]
    for name, lines in sorted(timeline.log_tails.items()):
        shown = "\n".join(lines[-LOG_LINES_SHOWN:]) or "(nothing logged while it ran)"
        parts.append(
            f'<details class="log" open><summary>{escape(name)}</summary>'
            f"<pre>{escape(shown)}</pre></details>"
        )
    return "\n".join(parts)


def _command_block(title: str, command: str, element_id: str) -> str:
    return (
        f'<div class="command"><span class="command-title">{escape(title)}:</span>'
        f' <code id="{element_id}">{escape(command)}</code>'
        f' <button type="button" class="copy" data-copy="{element_id}">copy</button></div>'
    )


def _table(header: list[str], rows: list[list[str]], css: str, row_attr: str | None = None) -> str:
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header) if any(header) else ""
    body = []
    for row in rows:
        attr = f' {row_attr}="{escape(row[0])}"' if row_attr else ""
        body.append(f"<tr{attr}>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>")
    thead = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f'<table class="{css}">{thead}<tbody>{"".join(body)}</tbody></table>'


CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #0f172a; background: #fff; }
h1 { font-size: 22px; margin: 0 0 8px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-top: 2px solid #e2e8f0; padding-top: 16px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.verdict { font-size: 17px; font-weight: 600; padding: 6px 10px; display: inline-block;
  border-radius: 4px; }
.verdict.failed { background: #fee2e2; color: #991b1b; }
.verdict.passed { background: #dcfce7; color: #166534; }
table { border-collapse: collapse; margin: 6px 0; }
td, th { padding: 2px 10px 2px 0; text-align: left; vertical-align: top; }
table.rows td, table.rows th, table.steps td, table.steps th { border-bottom: 1px solid #e2e8f0;
  padding: 2px 10px; }
table.steps tr.highlight td { background: #fef9c3; }
.fired { border-left: 4px solid #dc2626; background: #fef2f2; padding: 8px 12px; margin: 8px 0; }
.fired-name { font-size: 16px; font-weight: 700; margin: 0; color: #991b1b; }
.kind { font-size: 12px; text-transform: uppercase; background: #dc2626; color: #fff;
  border-radius: 3px; padding: 1px 5px; margin-right: 4px; }
.explanation { margin: 4px 0; }
.detail { margin: 4px 0; font-family: ui-monospace, monospace; font-size: 13px; }
figure { margin: 10px 0; padding: 10px; background: #fff; border: 1px solid #e2e8f0; }
figcaption { color: #475569; margin-bottom: 6px; }
.timeline-scroll { overflow-x: auto; }
svg.timeline { font: 12px system-ui, sans-serif; background: #fff; }
.lane-bg:nth-of-type(odd) { fill: #f8fafc; }
.lane-bg { fill: #f1f5f9; }
.lane-name { fill: #334155; font-weight: 600; }
.message-name { font-weight: 400; }
.tick { stroke: #e2e8f0; }
.tick-label { fill: #64748b; font-size: 11px; }
.step-line { stroke: #94a3b8; stroke-dasharray: 2 3; }
.step-line.highlight { stroke: #ca8a04; stroke-width: 2; stroke-dasharray: none; }
.step-number { fill: #475569; font-size: 11px; }
.fault-band { opacity: 0.55; }
.fault-label { fill: #0f172a; font-size: 11px; font-weight: 600; }
.stage-span { opacity: 0.85; }
.stage-label { fill: #0f172a; font-size: 11px; }
.fired-line { stroke: #dc2626; stroke-width: 2; }
.axis-caption { fill: #475569; font-size: 11px; font-style: italic; }
.axis-break { stroke: #334155; stroke-width: 1.5; }
.teardown-bg { fill: #fef3c7; opacity: 0.35; }
.step-label { fill: #334155; font-size: 10.5px; }
.pending-area { fill: #93c5fd; fill-opacity: 0.6; stroke: #2563eb; stroke-width: 1.2; }
.pending-sample { fill: #1d4ed8; }
.healed-line { stroke: #16a34a; stroke-width: 2; }
.recovery-line { stroke: #16a34a; stroke-width: 2; stroke-dasharray: 4 2; }
.recovery-label { fill: #166534; font-size: 11px; font-weight: 600; }
table.metrics td:first-child { font-weight: 600; }
.fired-label { fill: #b91c1c; font-weight: 700; }
.legend { list-style: none; padding: 0; margin: 8px 0 0; display: flex; flex-wrap: wrap;
  gap: 4px 16px; }
.swatch, .dot { display: inline-block; width: 12px; height: 12px; margin-right: 4px;
  vertical-align: -1px; opacity: 0.8; }
.dot { border-radius: 50%; }
.muted { color: #64748b; }
.note { color: #475569; font-style: italic; }
pre { background: #0f172a; color: #e2e8f0; padding: 10px; overflow-x: auto; font-size: 12px; }
.command { margin: 10px 0; }
.command code { background: #f1f5f9; padding: 3px 6px; font-size: 13px; }
.command-title { font-weight: 600; }
button.copy { font-size: 12px; }
details.log summary { cursor: pointer; font-weight: 600; }
"""

JS = """
document.querySelectorAll('button.copy').forEach(function (button) {
  button.addEventListener('click', function () {
    var text = document.getElementById(button.dataset.copy).textContent;
    if (navigator.clipboard) { navigator.clipboard.writeText(text); }
    button.textContent = 'copied';
  });
});
document.querySelectorAll('section.example').forEach(function (section) {
  var lines = section.querySelectorAll('.step-line');
  section.querySelectorAll('tr[data-step]').forEach(function (row) {
    var line = lines[Number(row.dataset.step) - 1];
    if (!line) { return; }
    row.addEventListener('mouseenter', function () {
      row.classList.add('highlight'); line.classList.add('highlight');
    });
    row.addEventListener('mouseleave', function () {
      row.classList.remove('highlight'); line.classList.remove('highlight');
    });
  });
});
"""
