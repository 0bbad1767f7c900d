"""What a run knows of the points: the catalogue the search draws from, and what each example
reached and faulted (the coverage the run summary and the report show)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from chaos_model.points._control import Point, Reached


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
    #: every call at a point: (``time.monotonic()``, service, point)
    calls: list[tuple[float, str, str]] = field(default_factory=list)


class PointCatalogue:
    """The points a run knows, in the order they were first reached (append-only, so that an
    index drawn by the search keeps naming the same point); frozen once a failure is being
    shrunk, so that a replayed choice sequence draws what it drew before."""

    def __init__(self) -> None:
        self._points: list[Point] = []
        self._known: set[tuple[str, str]] = set()
        #: when each point was first reached (``time.monotonic()``)
        self._first_seen: dict[tuple[str, str], float] = {}
        #: when the example learned last reached each of its points (first call)
        self._last_path: dict[tuple[str, str], float] = {}
        #: (service, point, when, action) faulted and fired in some example of the run
        self.covered: set[tuple[str, str, str, str]] = set()
        self.frozen = False

    def __len__(self) -> int:
        return len(self._points)

    def __iter__(self) -> Iterator[Point]:
        return iter(self._points)

    def learn(self, points: Iterable[Point], reached: Reached | None = None) -> int:
        """Add the points not known yet (``reached`` says when an example first reached them);
        return how many were new."""
        if self.frozen:
            return 0
        if reached is not None:
            self._last_path = {}
        for at, service, key in reached.calls if reached is not None else ():
            self._first_seen.setdefault((service, key), at)
            self._last_path.setdefault((service, key), at)
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

    def for_sweep(self, first: str = "") -> list[Point]:
        """The known points in the order the sweep faults them: service ``first`` (the one
        taking the webhook: its programs are the quickest), then the others; in each, the
        path of the example learned last (the sweep's probe: one delivery on a healthy stack)
        from its end backwards (the deepest stage of a pipeline: its gaps hold everything
        before them), then the points only other examples reached (error and restart paths),
        the latest found first."""

        def order(point: Point) -> tuple[bool, bool, float, str]:
            identity = (point.service, point.key)
            on_path = identity in self._last_path
            seen = self._last_path[identity] if on_path else self._first_seen.get(identity, 0.0)
            return (point.service != first, not on_path, -seen, point.key)

        return sorted(self._points, key=order)


@dataclass
class PointRow:
    """One point across a run: how often it was reached, faulted in each mode, fired, and what
    the examples where it fired found."""

    point: Point
    reached_examples: int = 0
    calls: int = 0
    faulted: dict[str, int] = field(default_factory=dict)
    fired: dict[str, int] = field(default_factory=dict)
    found: dict[str, set[str]] = field(default_factory=dict)

    @property
    def modes_text(self) -> str:
        """``crash after 1/1, raise before 0/2``: each mode, fired of armed."""
        faulted = sorted(self.faulted.items())
        return ", ".join(f"{mode} {self.fired.get(mode, 0)}/{n}" for mode, n in faulted) or "-"

    @property
    def found_text(self) -> str:
        return ", ".join(sorted({name for names in self.found.values() for name in names})) or "-"

    def to_json(self) -> dict[str, object]:
        return {
            "service": self.point.service,
            "point": self.point.key,
            "kind": self.point.kind,
            "location": self.point.location,
            "reached_examples": self.reached_examples,
            "calls": self.calls,
            "faulted": dict(self.faulted),
            "fired": dict(self.fired),
            "found": {mode: sorted(names) for mode, names in self.found.items()},
        }


class CoverageTable:
    """The fault x point table of a run: every point reached, and what faulting it did."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], PointRow] = {}

    def add(
        self,
        coverage: ExampleCoverage,
        points: dict[tuple[str, str], Point],
        violated: Iterable[str] = (),
    ) -> None:
        for identity, calls in coverage.reached.items():
            row = self._row(identity, points)
            row.reached_examples += 1
            row.calls += calls
        found = set(violated)
        for fault in coverage.faulted:
            row = self._row((fault.service, fault.point), points)
            row.faulted[fault.mode] = row.faulted.get(fault.mode, 0) + 1
            if fault.fired:
                row.fired[fault.mode] = row.fired.get(fault.mode, 0) + 1
                if found:
                    row.found.setdefault(fault.mode, set()).update(found)

    def _row(self, identity: tuple[str, str], points: dict[tuple[str, str], Point]) -> PointRow:
        row = self._rows.get(identity)
        if row is None:
            service, key = identity
            point = points.get(identity) or Point(service, key, key.rpartition(": ")[2])
            row = self._rows[identity] = PointRow(point)
        return row

    def rows(self) -> list[PointRow]:
        return sorted(self._rows.values(), key=lambda row: (row.point.service, row.point.key))

    def by_interest(self) -> list[PointRow]:
        """The points that were faulted first, then the others."""
        return sorted(self.rows(), key=lambda row: (not row.fired, not row.faulted))

    def __len__(self) -> int:
        return len(self._rows)

    def totals(self) -> dict[str, int]:
        rows = self._rows.values()
        return {
            "points": len(self._rows),
            "faulted": sum(1 for row in rows if row.faulted),
            "fired": sum(1 for row in rows if row.fired),
            "point_modes_fired": sum(len(row.fired) for row in rows),
            "with_findings": sum(1 for row in rows if row.found),
        }

    def to_json(self) -> dict[str, object]:
        return {"totals": self.totals(), "points": [row.to_json() for row in self.rows()]}

    def render(self, limit: int | None = None) -> str:
        """The table as text: a line per point (the faulted ones first), modes fired, findings."""
        rows = self.by_interest()
        lines = [
            f"{'service':8} {'reached':>7} {'faulted (fired)':24} found   point",
        ]
        for row in rows[:limit]:
            modes = ", ".join(
                f"{mode} {row.fired.get(mode, 0)}/{count}"
                for mode, count in sorted(row.faulted.items())
            )
            found = ",".join(sorted({n for names in row.found.values() for n in names})) or "-"
            lines.append(
                f"{row.point.service:8} {row.reached_examples:>7} {modes or '-':24} {found:7} "
                f"{row.point.key} ({row.point.location})"
            )
        if limit is not None and len(rows) > limit:
            lines.append(f"... and {len(rows) - limit} more point(s) (summary.json has them all)")
        return "\n".join(lines)
