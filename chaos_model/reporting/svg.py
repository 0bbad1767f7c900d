"""A timeline as one inline SVG: time runs left to right, one lane per service, one for the
webhook's answers and one per message; faults are coloured bands over the lanes they hit."""

from __future__ import annotations

from html import escape

from chaos_model.reporting.timeline import Timeline

LABEL_WIDTH = 210
PLOT_WIDTH = 940
RIGHT_PAD = 30
WIDTH = LABEL_WIDTH + PLOT_WIDTH + RIGHT_PAD
AXIS_HEIGHT = 46
STEPS_HEIGHT = 40
LANE_HEIGHT = 24
WEBHOOK_HEIGHT = 28
MAX_MESSAGE_LANES = 40
#: estimated widths of one character of a fault label and of a step number, in pixels
LABEL_CHAR_WIDTH = 6.6
NUMBER_CHAR_WIDTH = 6.2

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
_NICE_TICKS = (0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600)


def fault_colour(kind: str) -> str:
    return FAULT_COLOURS.get(kind, "#475569")


def _tick_interval(duration: float) -> float:
    for interval in _NICE_TICKS:
        if duration / interval <= 10:
            return interval
    return _NICE_TICKS[-1]


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
    def __init__(self, duration: float) -> None:
        self.scale = PLOT_WIDTH / max(duration, 1e-3)
        self.parts: list[str] = []

    def x(self, seconds: float) -> float:
        return LABEL_WIDTH + seconds * self.scale

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


def render_svg(timeline: Timeline, element_id: str) -> str:
    canvas = _Canvas(timeline.duration)
    lanes = list(timeline.services)
    y = AXIS_HEIGHT
    steps_y = y
    y += STEPS_HEIGHT
    lane_y = {service: y + i * LANE_HEIGHT for i, service in enumerate(lanes)}
    y += len(lanes) * LANE_HEIGHT
    webhook_y = y
    y += WEBHOOK_HEIGHT
    messages = timeline.messages[:MAX_MESSAGE_LANES]
    messages_top = y
    y += len(messages) * LANE_HEIGHT
    hidden = len(timeline.messages) - len(messages)
    height = y + (22 if hidden else 8)

    _axis(canvas, timeline.duration, height)
    canvas.text(8, steps_y + 16, "steps", "lane-name")
    number_rows = [_LabelRow(), _LabelRow()]
    for step in timeline.steps:
        x = canvas.x(step.time)
        canvas.add(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{steps_y + 2}" y2="{height - 4}"'
            ' class="step-line">'
            f"<title>{escape(f'{step.number}. {step.call} at {step.time:.2f}s')}</title></line>"
        )
        # a number that fits nowhere is left out: the step table lists every step
        for row, numbers in enumerate(number_rows):
            if numbers.claim(x + 2, str(step.number), NUMBER_CHAR_WIDTH):
                canvas.text(x + 2, steps_y + 14 + row * 14, str(step.number), "step-number")
                break
    for service, top in lane_y.items():
        canvas.add(
            f'<rect x="0" y="{top}" width="{WIDTH}" height="{LANE_HEIGHT}" class="lane-bg"/>'
        )
        canvas.text(8, top + 16, service, "lane-name")
    band_labels = {service: _LabelRow() for service in lane_y}
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
                canvas.text(x + 4, top + 16, band.label, "fault-label")
    canvas.text(8, webhook_y + 18, "webhook answers", "lane-name")
    for answer in timeline.answers:
        canvas.add(
            f'<circle cx="{canvas.x(answer.time):.1f}" cy="{webhook_y + 14}" r="5"'
            f' fill="{ANSWER_COLOURS[answer.answer]}" class="answer">'
            f"<title>{escape(f'{answer.answer}: {answer.detail}')}</title></circle>"
        )
    for position, lane in enumerate(messages):
        top = messages_top + position * LANE_HEIGHT
        canvas.text(8, top + 16, lane.label, "lane-name message-name")
        for span in lane.spans:
            x = canvas.x(span.start)
            width = canvas.x(span.end) - x
            canvas.rect(
                x,
                top + 4,
                width,
                LANE_HEIGHT - 8,
                STAGE_COLOURS.get(span.stage, "#94a3b8"),
                "stage-span",
                f"{lane.label}: {span.stage} from {span.start:.2f}s",
            )
            if width > 8 * len(span.stage):
                canvas.text(x + 3, top + 16, span.stage, "stage-label")
        for answer in lane.answers:
            canvas.add(
                f'<circle cx="{canvas.x(answer.time):.1f}" cy="{top + LANE_HEIGHT / 2}" r="3"'
                f' fill="{ANSWER_COLOURS[answer.answer]}" class="answer-small">'
                f"<title>{escape(answer.detail)}</title></circle>"
            )
    if hidden:
        canvas.text(8, y + 16, f"{hidden} more messages not drawn", "lane-name")
    fired_at: dict[float, list[str]] = {}
    for fired in timeline.fired:
        fired_at.setdefault(round(fired.time, 2), []).append(fired.name)
    for at, names in fired_at.items():
        x = canvas.x(at)
        canvas.add(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{AXIS_HEIGHT - 22}" y2="{height}"'
            ' class="fired-line"/>'
        )
        label = f"✖ {', '.join(names)}"
        if x - 7 * len(label) > 0:
            canvas.text(x - 4, AXIS_HEIGHT - 10, label, "fired-label", anchor="end")
        else:
            canvas.text(x + 4, AXIS_HEIGHT - 10, label, "fired-label")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{element_id}" class="timeline"'
        f' width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img">'
        + "".join(canvas.parts)
        + "</svg>"
    )


def _axis(canvas: _Canvas, duration: float, height: int) -> None:
    interval = _tick_interval(duration)
    tick = 0.0
    while tick <= duration + 1e-9:
        x = canvas.x(tick)
        canvas.add(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="20" y2="{height}" class="tick"/>')
        canvas.text(x, 14, f"{tick:g}s", "tick-label", anchor="middle")
        tick += interval
