"""What an example measured: webhook latency, the webhook's answers by status class, pending
work over time and the time the pipeline took to recover from the final heal.

Built from an example's history and the pending work the machine sampled, so a saved capture
gives the same numbers later.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from chaos_model.observe import PendingSample
from chaos_model.reporting.answers import ERRORS, webhook_answers

#: the status classes an example's answers are counted in
STATUS_CLASSES = ("2xx", "4xx", "5xx", "errors")
_SPARK = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class Latency:
    """Seconds from sending a webhook request to its answer (a timeout at the time waited)."""

    count: int
    p50: float
    p95: float
    max: float


@dataclass(frozen=True)
class ExampleMetrics:
    #: None when the webhook answered nothing with a status and nothing timed out
    latency: Latency | None
    #: answers by class: 2xx, 4xx, 5xx, and errors (a timeout or no connection)
    answers: dict[str, int]
    queue_depth: tuple[PendingSample, ...]
    #: the largest total of pending work seen, when, and what it was made of
    peak_depth: int
    peak_at: float | None
    peak_pending: dict[str, int]
    #: seconds since the example began: the end of its final heal, and the first quiescence
    #: after it (None: it did not quiesce)
    healed_at: float | None
    quiescent_at: float | None
    #: the last moment the example recorded anything, in seconds since it began
    duration: float = 0.0

    @property
    def recovery_seconds(self) -> float | None:
        """From the final heal to the pipeline being quiescent again."""
        if self.healed_at is None or self.quiescent_at is None:
            return None
        return max(0.0, self.quiescent_at - self.healed_at)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["queue_depth"] = [
            {"time": round(sample.time, 3), "pending": sample.pending}
            for sample in self.queue_depth
        ]
        recovery = self.recovery_seconds
        data["recovery_seconds"] = None if recovery is None else round(recovery, 3)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExampleMetrics:
        latency = data.get("latency")
        return cls(
            latency=None if latency is None else Latency(**latency),
            answers=dict(data.get("answers", {})),
            queue_depth=tuple(PendingSample(**item) for item in data.get("queue_depth", [])),
            peak_depth=int(data.get("peak_depth", 0)),
            peak_at=data.get("peak_at"),
            peak_pending=dict(data.get("peak_pending", {})),
            healed_at=data.get("healed_at"),
            quiescent_at=data.get("quiescent_at"),
            duration=float(data.get("duration", 0.0)),
        )


def percentile(values: Sequence[float], percent: float) -> float:
    """The nearest-rank percentile: the smallest value with ``percent`` % of them at or below."""
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def example_metrics(
    ops: list[dict[str, Any]],
    queue_depth: Sequence[PendingSample] = (),
    quiescent_at: float | None = None,
) -> ExampleMetrics:
    """The metrics of an example from its history (``History.to_json()``), the pending work the
    machine sampled and when it found the pipeline quiescent after the final heal."""
    answers = webhook_answers(ops)
    counts = Counter("errors" if a.answer in ERRORS else a.answer for a in answers)
    # A request that never reached the webhook has no latency; one that timed out waited that
    # long, and leaving it out would hide the slowest answers.
    waited = [answer.seconds for answer in answers if answer.answer != "no connection"]
    latency = None
    if waited:
        latency = Latency(
            len(waited),
            round(percentile(waited, 50), 4),
            round(percentile(waited, 95), 4),
            round(max(waited), 4),
        )
    peak = max(queue_depth, key=lambda sample: sample.total, default=None)
    heals = [op["time"] for op in ops if op["f"] == "heal-all" and op["type"] != "invoke"]
    return ExampleMetrics(
        latency=latency,
        answers={status: counts.get(status, 0) for status in STATUS_CLASSES},
        queue_depth=tuple(queue_depth),
        peak_depth=0 if peak is None else peak.total,
        peak_at=None if peak is None or not peak.total else peak.time,
        peak_pending={} if peak is None else dict(peak.pending),
        healed_at=heals[-1] if heals else None,
        quiescent_at=quiescent_at,
        duration=max(
            [0.0, *(op["time"] for op in ops), *(s.time for s in queue_depth)]
            + ([quiescent_at] if quiescent_at is not None else [])
        ),
    )


def depth_at(samples: Sequence[PendingSample], seconds: float) -> int:
    """The total pending work at ``seconds``: the last sample at or before it (0 before any)."""
    total = 0
    for sample in samples:
        if sample.time > seconds:
            break
        total = sample.total
    return total


def sparkline(metrics: ExampleMetrics, width: int = 24) -> str:
    """Pending work over the example as ``width`` block characters, each the most seen in its
    stretch of time (the lowest block is none at all)."""
    samples, end = metrics.queue_depth, metrics.duration
    if not samples or metrics.peak_depth == 0 or end <= 0:
        return ""
    cells: list[str] = []
    for cell in range(width):
        start, stop = end * cell / width, end * (cell + 1) / width
        inside = [s.total for s in samples if start <= s.time < stop]
        most = max([depth_at(samples, start), *inside])
        level = 0 if most == 0 else 1 + round(most / metrics.peak_depth * (len(_SPARK) - 2))
        cells.append(_SPARK[level])
    return "".join(cells)


def clock(seconds: float) -> str:
    """``12 ms`` under a second, ``1.23 s`` above."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def describe(metrics: ExampleMetrics) -> list[tuple[str, str]]:
    """The metrics as (name, value) lines, the same in a report, a result and a console."""
    latency = metrics.latency
    lines = [
        (
            "webhook latency",
            "no answer"
            if latency is None
            else f"p50 {clock(latency.p50)}, p95 {clock(latency.p95)}, max {clock(latency.max)}"
            f" ({latency.count} answers)",
        ),
        (
            "webhook answers",
            ", ".join(f"{status} {metrics.answers.get(status, 0)}" for status in STATUS_CLASSES),
        ),
    ]
    if metrics.peak_depth and metrics.peak_at is not None:
        kinds = ", ".join(f"{name} {count}" for name, count in sorted(metrics.peak_pending.items()))
        depth = f"peak {metrics.peak_depth} ({kinds}) at {metrics.peak_at:.2f} s"
    else:
        depth = "nothing seen waiting" if metrics.queue_depth else "not recorded"
    lines.append(("pending work", depth))
    recovery = metrics.recovery_seconds
    if recovery is not None:
        recovered = f"{clock(recovery)} from the final heal to quiescence"
    elif metrics.healed_at is not None:
        recovered = "no quiescence seen after the final heal"
    else:
        recovered = "no final heal"
    lines.append(("time to recover", recovered))
    return lines
