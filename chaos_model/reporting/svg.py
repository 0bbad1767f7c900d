"""A timeline as one inline SVG: one column per step, then the teardown on a clock of its own
(see :mod:`chaos_model.reporting.scale`); one lane per service, one for the webhook's answers,
one for the pending work and one per message; faults are coloured bands over the lanes they
hit."""

from __future__ import annotations

from html import escape

from chaos_model.observe import PendingSample
from chaos_model.reporting.metrics import ExampleMetrics, clock
from chaos_model.reporting.scale import TimeScale, step_scale
from chaos_model.reporting.timeline import StepMark, Timeline

LABEL_WIDTH = 210
#: the plot's width when the steps fit in it; more steps widen it (the figure scrolls)
PLOT_WIDTH = 940
#: the share of the plot the step columns take, and the narrowest a column gets
STEPS_SHARE = 0.55
COLUMN_MIN_WIDTH = 28
RIGHT_PAD = 30
AXIS_HEIGHT = 60
LANE_HEIGHT = 24
WEBHOOK_HEIGHT = 28
PENDING_HEIGHT = 44
MAX_MESSAGE_LANES = 40
#: estimated widths of one character of a fault label, of a step number and of a step label
LABEL_CHAR_WIDTH = 6.6
NUMBER_CHAR_WIDTH = 6.2
STEP_LABEL_CHAR_WIDTH = 5.8
#: the steps lane: a row of numbers, then each step's label written upwards under its number
STEP_NUMBER_ROW = 18
STEP_LABEL_GAP = 6

FAULT_COLOURS = {
    "pause": "#f59e0b",
    "kill": "#dc2626",
    "stop": "#b91c1c",
    "terminate_connections": "#7c3aed",
    "refuse_connections": "#9333ea",
    "llm": "#0891b2",
    "failpoint": "#db2777",
    "partition": "#ea580c",
    "network": "#65a30d",
    "latency_ramp": "#4d7c0f",
}
ANSWER_COLOURS = {
    "2xx": "#16a34a",
    "4xx": "#d97706",
    "5xx": "#dc2626",
    "timeout": "#7c3aed",
    "no connection": "#6b7280",
}
STAGE_COLOURS = {
    "received": "#60a5fa",
    "scored": "#2dd4bf",
    "extracted": "#22c55e",
    "failed": "#ef4444",
}


def fault_colour(kind: str) -> str:
    return FAULT_COLOURS.get(kind, "#475569")


class _LabelRow:
    """Where the last label of a row ends, so that labels never overlap."""

    def __init__(self) -> None:
        self.end = 0.0

    def claim(self, x: float, text: str, char_width: float) -> bool:
        if x < self.end + 4:
            return False
        self.end = x + len(text) * char_width
        return True


class _Canvas:
    def __init__(self, scale: TimeScale) -> None:
        self.scale = scale
        self.parts: list[str] = []

    def x(self, seconds: float) -> float:
        return self.scale.x(seconds)

    def add(self, element: str) -> None:
        self.parts.append(element)

    def text(self, x: float, y: float, text: str, css: str, anchor: str = "start") -> None:
        self.add(
            f'<text x="{x:.1f}" y="{y:.1f}" class="{css}" text-anchor="{anchor}">'
            f"{escape(text)}</text>"
        )

    def rect(self, x: float, y: float, w: float, h: float, fill: str, css: str, tip: str) -> None:
        self.add(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 3):.1f}" height="{h:.1f}"'
            f' fill="{fill}" class="{css}"><title>{escape(tip)}</title></rect>'
        )


def step_label(step: StepMark) -> str:
    """What a step's column says under its number: the rule, what it hit, and when it began."""
    return f"{step.name or step.call} at {clock(step.time)}"


def timeline_scale(timeline: Timeline) -> TimeScale:
    steps = len(timeline.steps)
    steps_width = max(PLOT_WIDTH * STEPS_SHARE, steps * COLUMN_MIN_WIDTH) if steps else 0.0
    teardown_width = PLOT_WIDTH * (1 - STEPS_SHARE) if steps else PLOT_WIDTH
    return step_scale(
        [step.time for step in timeline.steps],
        timeline.teardown_at,
        timeline.duration,
        left=LABEL_WIDTH,
        steps_width=steps_width,
        teardown_width=teardown_width,
    )


def render_svg(timeline: Timeline, element_id: str) -> str:
    scale = timeline_scale(timeline)
    canvas = _Canvas(scale)
    width = round(scale.right + RIGHT_PAD)
    lanes = list(timeline.services)
    longest = max((len(step_label(step)) for step in timeline.steps), default=0)
    steps_height = STEP_NUMBER_ROW + STEP_LABEL_GAP + longest * STEP_LABEL_CHAR_WIDTH + 8
    y = AXIS_HEIGHT
    steps_y = y
    y += round(steps_height)
    lane_y = {service: y + i * LANE_HEIGHT for i, service in enumerate(lanes)}
    y += len(lanes) * LANE_HEIGHT
    webhook_y = y
    y += WEBHOOK_HEIGHT
    pending_y = y
    y += PENDING_HEIGHT
    messages = timeline.messages[:MAX_MESSAGE_LANES]
    messages_top = y
    y += len(messages) * LANE_HEIGHT
    hidden = len(timeline.messages) - len(messages)
    height = y + (22 if hidden else 8)

    for top in lane_y.values():
        canvas.add(
            f'<rect x="0" y="{top}" width="{width}" height="{LANE_HEIGHT}" class="lane-bg"/>'
        )
    _axis(canvas, timeline, height)
    _steps(canvas, timeline, steps_y, height)
    canvas.text(8, steps_y + 14, "steps", "lane-name")
    for service, top in lane_y.items():
        canvas.text(8, top + 16, service, "lane-name")
    band_labels = {service: _LabelRow() for service in lane_y}
    # labels go on top of every band, so that a later band does not cover an earlier label
    labels = _Canvas(scale)
    for band in sorted(timeline.bands, key=lambda band: band.start):
        for service in band.services:
            if service not in lane_y:
                continue
            top = lane_y[service]
            x = canvas.x(band.start)
            canvas.rect(
                x,
                top + 2,
                canvas.x(band.end) - x,
                LANE_HEIGHT - 4,
                fault_colour(band.kind),
                "fault-band",
                f"{band.label}: {band.start:.2f}s to {band.end:.2f}s ({band.ended_by})",
            )
            # a label that would run into the previous one is left out: the legend lists it
            if band_labels[service].claim(x + 4, band.label, LABEL_CHAR_WIDTH):
                labels.text(x + 4, top + 16, band.label, "fault-label")
    canvas.parts.extend(labels.parts)
    canvas.text(8, webhook_y + 18, "webhook answers", "lane-name")
    for answer in timeline.answers:
        canvas.add(
            f'<circle cx="{canvas.x(answer.time):.1f}" cy="{webhook_y + 14}" r="5"'
            f' fill="{ANSWER_COLOURS[answer.answer]}" class="answer">'
            f"<title>{escape(f'{answer.answer}: {answer.detail}')}</title></circle>"
        )
    if timeline.metrics is not None:
        _pending(canvas, timeline.metrics, pending_y)
    for position, lane in enumerate(messages):
        top = messages_top + position * LANE_HEIGHT
        canvas.text(8, top + 16, lane.label, "lane-name message-name")
        for span in lane.spans:
            x = canvas.x(span.start)
            span_width = canvas.x(span.end) - x
            canvas.rect(
                x,
                top + 4,
                span_width,
                LANE_HEIGHT - 8,
                STAGE_COLOURS.get(span.stage, "#94a3b8"),
                "stage-span",
                f"{lane.label}: {span.stage} from {span.start:.2f}s",
            )
            if span_width > 8 * len(span.stage):
                canvas.text(x + 3, top + 16, span.stage, "stage-label")
        for answer in lane.answers:
            canvas.add(
                f'<circle cx="{canvas.x(answer.time):.1f}" cy="{top + LANE_HEIGHT / 2}" r="3"'
                f' fill="{ANSWER_COLOURS[answer.answer]}" class="answer-small">'
                f"<title>{escape(answer.detail)}</title></circle>"
            )
    if hidden:
        canvas.text(8, y + 16, f"{hidden} more messages not drawn", "lane-name")
    _fired(canvas, timeline, height)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{element_id}" class="timeline"'
        f' width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
        + "".join(canvas.parts)
        + "</svg>"
    )


def _axis(canvas: _Canvas, timeline: Timeline, height: int) -> None:
    """The top: a caption over the step columns, and the teardown's clock with round ticks."""
    scale = canvas.scale
    if scale.columns:
        canvas.text(
            scale.columns[0].left, 14, "one column per step, however long it took", "axis-caption"
        )
        teardown_width = scale.right - scale.teardown_left
        canvas.add(
            f'<rect x="{scale.teardown_left:.1f}" y="20" width="{teardown_width:.1f}"'
            f' height="{height - 20}" class="teardown-bg"/>'
        )
        # two slanted strokes: the clock changes here
        for offset in (-3, 3):
            x = scale.teardown_left + offset
            canvas.add(
                f'<line x1="{x - 3:.1f}" y1="40" x2="{x + 3:.1f}" y2="28" class="axis-break"/>'
            )
        canvas.text(
            scale.teardown_left + 8,
            14,
            f"teardown from {scale.teardown_at:.2f} s: heal, probe, quiescence",
            "axis-caption",
        )
    start_label_end = scale.teardown_left + 40 if scale.columns else scale.teardown_left - 40
    for tick in scale.ticks():
        x = canvas.x(tick)
        canvas.add(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="36" y2="{height}" class="tick"/>')
        if x > start_label_end:
            canvas.text(x, 32, f"{tick:g}s", "tick-label", anchor="middle")


def _steps(canvas: _Canvas, timeline: Timeline, top: int, height: int) -> None:
    """Each step's column: a line where it began, its number, and its label written upwards."""
    for step, column in zip(timeline.steps, canvas.scale.columns, strict=False):
        x = column.left
        canvas.add(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + 2}" y2="{height - 4}"'
            ' class="step-line">'
            f"<title>{escape(f'{step.number}. {step.call} at {step.time:.3f}s')}</title></line>"
        )
        canvas.text(column.centre, top + 14, str(step.number), "step-number", anchor="middle")
        # turned a quarter anticlockwise about its end, the label hangs down from under the
        # number and reads upwards; shifted so that its glyphs sit on the column's centre
        label_x = column.centre + 4
        label_y = top + STEP_NUMBER_ROW + STEP_LABEL_GAP
        canvas.add(
            f'<text x="{label_x:.1f}" y="{label_y}" class="step-label" text-anchor="end"'
            f' transform="rotate(-90 {label_x:.1f} {label_y})">{escape(step_label(step))}</text>'
        )


def _pending(canvas: _Canvas, metrics: ExampleMetrics, top: int) -> None:
    """Pending work over time as a filled step line, with the final heal and the quiescence
    after it marked; the lane's name gives the peak."""
    peak = metrics.peak_depth
    name = f"pending work (peak {peak})" if peak else "pending work"
    canvas.text(8, top + 18, name, "lane-name")
    base = top + PENDING_HEIGHT - 6
    room = PENDING_HEIGHT - 18

    def level(total: int) -> float:
        return base - (total / peak * room if peak else 0.0)

    samples = metrics.queue_depth
    if not samples:
        canvas.text(canvas.x(0.0) + 4, top + 18, "not recorded", "axis-caption")
    else:
        start_x = canvas.x(0.0)
        path = [f"M{start_x:.1f},{base:.1f}"]
        for sample in samples:
            path.append(f"H{canvas.x(sample.time):.1f}V{level(sample.total):.1f}")
        path.append(f"H{canvas.scale.right:.1f}V{base:.1f}Z")
        canvas.add(f'<path d="{"".join(path)}" class="pending-area"/>')
        for sample in samples:
            canvas.add(
                f'<circle cx="{canvas.x(sample.time):.1f}" cy="{level(sample.total):.1f}" r="2"'
                f' class="pending-sample"><title>{escape(_sample_tip(sample))}</title></circle>'
            )
    if metrics.healed_at is None:
        return
    healed = canvas.x(metrics.healed_at)
    canvas.add(
        f'<line x1="{healed:.1f}" x2="{healed:.1f}" y1="{top + 2}" y2="{base}"'
        f' class="healed-line"><title>final heal done at {metrics.healed_at:.2f}s</title></line>'
    )
    recovery = metrics.recovery_seconds
    if recovery is None or metrics.quiescent_at is None:
        _beside(canvas, healed, top + 16, "healed; not seen quiescent")
        return
    quiet = canvas.x(metrics.quiescent_at)
    canvas.add(
        f'<line x1="{healed:.1f}" x2="{quiet:.1f}" y1="{top + 6}" y2="{top + 6}"'
        f' class="recovery-line"><title>recovered in {clock(recovery)}</title></line>'
    )
    _beside(canvas, healed, top + 16, f"recovered in {clock(recovery)}")


def _beside(canvas: _Canvas, x: float, y: float, text: str) -> None:
    """A recovery label right of ``x``, or left of it where it would run off the plot."""
    if x + 4 + len(text) * LABEL_CHAR_WIDTH <= canvas.scale.right:
        canvas.text(x + 4, y, text, "recovery-label")
    else:
        canvas.text(x - 4, y, text, "recovery-label", anchor="end")


def _sample_tip(sample: PendingSample) -> str:
    kinds = ", ".join(f"{name} {count}" for name, count in sorted(sample.pending.items()))
    return f"{sample.total} pending at {sample.time:.2f}s" + (f": {kinds}" if kinds else "")


def _fired(canvas: _Canvas, timeline: Timeline, height: int) -> None:
    fired_at: dict[float, list[str]] = {}
    for fired in timeline.fired:
        fired_at.setdefault(round(fired.time, 3), []).append(fired.name)
    for at, names in fired_at.items():
        x = canvas.x(at)
        canvas.add(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{AXIS_HEIGHT - 22}" y2="{height}"'
            ' class="fired-line"/>'
        )
        label = f"✖ {', '.join(names)}"
        if x - 7 * len(label) > 0:
            canvas.text(x - 4, AXIS_HEIGHT - 8, label, "fired-label", anchor="end")
        else:
            canvas.text(x + 4, AXIS_HEIGHT - 8, label, "fired-label")
