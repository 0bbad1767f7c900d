"""Where a moment of an example goes on its timeline: one column per step, then the teardown on
a clock of its own.

Steps take milliseconds and the teardown seconds: on one clock every step would crowd into the
first few pixels and the rest would be an empty wait. So each step gets a column of the same
width, however long it lasted, and what happened during it is placed in proportion inside its
column; the teardown (the final heal, the recovery probe, the wait for quiescence) follows on a
linear clock. Faults, answers, stage changes and samples all go through the same scale, so each
stays lined up with the step it happened in.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

_NICE_TICKS = (0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600)


@dataclass(frozen=True)
class Column:
    """A step's column: from its start to the next step's (or to the teardown)."""

    number: int
    start: float
    end: float
    left: float
    right: float

    @property
    def centre(self) -> float:
        return (self.left + self.right) / 2


@dataclass(frozen=True)
class TimeScale:
    #: (seconds, x) pairs, both increasing; a moment between two is placed linearly
    knots: tuple[tuple[float, float], ...]
    columns: tuple[Column, ...]
    #: where the teardown starts, in seconds and in x
    teardown_at: float
    teardown_left: float
    #: the last moment drawn, and its x
    duration: float
    right: float

    def x(self, seconds: float) -> float:
        first_time, first_x = self.knots[0]
        if seconds <= first_time:
            return first_x
        for (t0, x0), (t1, x1) in itertools.pairwise(self.knots):
            if seconds <= t1:
                return x1 if t1 == t0 else x0 + (seconds - t0) / (t1 - t0) * (x1 - x0)
        return self.knots[-1][1]

    def ticks(self) -> list[float]:
        """Round moments on the teardown's clock (all of the timeline's without steps)."""
        span = self.duration - self.teardown_at
        if span <= 0:
            return []
        interval = tick_interval(span)
        first = math.ceil(self.teardown_at / interval - 1e-9)
        ticks: list[float] = []
        tick = first * interval
        while tick <= self.duration + 1e-9:
            ticks.append(round(tick, 6))
            first += 1
            tick = first * interval
        return ticks


def tick_interval(duration: float) -> float:
    for interval in _NICE_TICKS:
        if duration / interval <= 10:
            return interval
    return _NICE_TICKS[-1]


def estimated_teardown(step_times: Sequence[float], duration: float) -> float:
    """Where the teardown began, for a capture that did not record it: one typical step after
    the last one."""
    if not step_times:
        return 0.0
    gaps = [later - earlier for earlier, later in itertools.pairwise(step_times)]
    typical = statistics.median(gaps) if gaps else 0.0
    return min(duration, step_times[-1] + typical)


def step_scale(
    step_times: Sequence[float],
    teardown_at: float | None,
    duration: float,
    *,
    left: float,
    steps_width: float,
    teardown_width: float,
) -> TimeScale:
    """The scale of a timeline starting at x ``left``: ``steps_width`` split evenly among the
    steps, then ``teardown_width`` for the teardown (the whole width is one clock without
    steps)."""
    times = sorted(step_times)
    if not times:
        end = max(duration, 1e-3)
        right = left + steps_width + teardown_width
        return TimeScale(((0.0, left), (end, right)), (), 0.0, left, end, right)
    start = estimated_teardown(times, duration) if teardown_at is None else teardown_at
    start = max(start, times[-1])
    end = max(duration, start + 1e-3)
    width = steps_width / len(times)
    bounds = [*times, start]
    columns = tuple(
        Column(number, bounds[i], bounds[i + 1], left + i * width, left + (i + 1) * width)
        for i, number in enumerate(range(1, len(times) + 1))
    )
    teardown_left = left + steps_width
    knots = (
        *((column.start, column.left) for column in columns),
        (start, teardown_left),
        (end, teardown_left + teardown_width),
    )
    return TimeScale(knots, columns, start, teardown_left, end, teardown_left + teardown_width)
