"""What a run knows of the points: the catalogue the search draws from, and what each example
reached and faulted (the coverage the run summary and the report show)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from chaos_model.points._control import Point

#: the order the sweep faults points in: what changes the world outside the process first
KIND_ORDER = ("write", "commit", "publish", "ack", "call", "read")


@dataclass(frozen=True)
class FaultedPoint:
    """A point fault an example applied, and whether the call it waited for came."""

    service: str
    point: str
    when: str
    action: str
    fired: bool

    @property
    def mode(self) -> str:
        return f"{self.action} {self.when}"


@dataclass
class ExampleCoverage:
    """The points one example reached (how many times) and the point faults it applied."""

    reached: dict[tuple[str, str], int] = field(default_factory=dict)
    faulted: list[FaultedPoint] = field(default_factory=list)


class PointCatalogue:
    """The points a run knows, in the order they were first reached (append-only, so that an
    index drawn by the search keeps naming the same point); frozen once a failure is being
    shrunk, so that a replayed choice sequence draws what it drew before."""

    def __init__(self) -> None:
        self._points: list[Point] = []
        self._known: set[tuple[str, str]] = set()
        #: (service, point, when, action) faulted and fired in some example of the run
        self.covered: set[tuple[str, str, str, str]] = set()
        self.frozen = False

    def __len__(self) -> int:
        return len(self._points)

    def __iter__(self) -> Iterator[Point]:
        return iter(self._points)

    def learn(self, points: Iterable[Point]) -> int:
        """Add the points not known yet; return how many were new."""
        if self.frozen:
            return 0
        new = 0
        for point in points:
            identity = (point.service, point.key)
            if identity not in self._known:
                self._known.add(identity)
                self._points.append(point)
                new += 1
        return new

    def pick(self, index: int) -> Point | None:
        return self._points[index % len(self._points)] if self._points else None

    def novelty(self, coverage: ExampleCoverage) -> int:
        """How many (point, mode) pairs this example faulted for the first time in the run;
        they count as covered from now on."""
        fresh = {
            (fault.service, fault.point, fault.when, fault.action)
            for fault in coverage.faulted
            if fault.fired
        } - self.covered
        self.covered |= fresh
        return len(fresh)

    def for_sweep(self) -> list[Point]:
        """The known points, what changes the world outside the process first."""
        return sorted(
            self._points,
            key=lambda point: (KIND_ORDER.index(point.kind), point.service, point.key),
        )
