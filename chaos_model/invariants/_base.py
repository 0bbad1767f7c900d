"""Invariants: small named objects whose docstring is their precise statement.

A verdict is valid, invalid or unknown. A checker that crashes yields unknown, never a pass.
Safety invariants are checked after every step; liveness invariants after heal-all and a
quiescence wait, and their violations are reported apart (a lost message is not the same finding
as a slow recovery).
"""

from __future__ import annotations

import enum
import inspect
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from chaos_model.adapter import OracleSpec, StageGraph
from chaos_model.history import History
from chaos_model.message_ids import MessageId
from chaos_model.observe import FeedObservation, Snapshot
from chaos_model.oracle import Call, calls_from_records


class Verdict(enum.Enum):
    VALID = "valid"
    INVALID = "invalid"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Result:
    invariant: str
    kind: str
    verdict: Verdict
    detail: str = ""

    def __str__(self) -> str:
        detail = f": {self.detail}" if self.detail else ""
        return f"[{self.kind}] {self.invariant} {self.verdict.value}{detail}"


@dataclass
class ModelState:
    """What the model knows it did: the ground truth invariants compare the system against."""

    #: every update the model asked Telegram to deliver, by update_id -> chat_id
    sent: dict[int, int] = field(default_factory=dict)
    #: update ids Telegram considers delivered (some attempt got a 2xx)
    accepted: set[int] = field(default_factory=set)
    #: update ids whose delivery Telegram is still retrying
    retrying: set[int] = field(default_factory=set)
    #: update ids used only by forged (wrong secret) or malformed requests
    rejected: set[int] = field(default_factory=set)
    #: the highest stage each message was seen in, by message id
    seen_stage: dict[MessageId, str] = field(default_factory=dict)
    max_attempts: int = 10
    #: the text of every update the model sent, by update_id
    texts: dict[MessageId, str] = field(default_factory=dict)
    #: when (seconds on the history's clock) each message was first seen at a terminal stage
    terminal_seen_at: dict[MessageId, float] = field(default_factory=dict)
    #: the wall-clock time of the history's zero (the LLM stub records wall-clock times)
    wall_offset: float = 0.0
    #: the target's stage graph, and how its LLM calls are read (None: it does not say)
    graph: StageGraph = field(default_factory=StageGraph)
    oracle: OracleSpec | None = None
    #: seconds within which every webhook answer must arrive, and the service that answers
    webhook_deadline: float = 3.0
    webhook_service: str = ""

    def saw(self, snapshot: Snapshot, at: float) -> None:
        """Note the stage of every message in ``snapshot``, taken by ``at`` on the history's
        clock."""
        for row in snapshot.messages:
            self.seen_stage[row.id] = row.stage
            if row.stage in self.graph.terminal:
                self.terminal_seen_at.setdefault(row.id, at)


@dataclass
class CheckContext:
    model: ModelState
    snapshot: Snapshot | None
    feeds: list[FeedObservation] = field(default_factory=list)
    history: History = field(default_factory=History)
    #: liveness only: did the system quiesce before the deadline, and how long it took
    quiesced: bool | None = None
    #: liveness only: what was still pending at the quiescence deadline
    pending: dict[str, Any] = field(default_factory=dict)
    #: liveness only: seconds a fresh update took end to end after heal (None = never)
    recovery_seconds: float | None = None
    recovery_bound: float = 15.0
    #: what the LLM stub recorded of the example's calls; None when they could not be read
    llm_records: list[dict[str, Any]] | None = None

    def calls(self) -> tuple[Call, ...] | None:
        """The stub's records as the calls of messages' LLM stages; None when they could not be
        read or the target's adapter does not say how to read them."""
        if self.llm_records is None or self.model.oracle is None:
            return None
        return calls_from_records(self.llm_records, self.model.oracle, self.model.wall_offset)


class Invariant:
    name: ClassVar[str]
    kind: ClassVar[Literal["safety", "liveness"]]
    #: the observations it needs of a target (see :func:`chaos_model.invariants.features`)
    needs: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def statement(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")

    def check(self, ctx: CheckContext) -> Result:
        """Judge ``ctx``; never raises: a crash is an unknown verdict."""
        try:
            problem = self.violation(ctx)
        except Exception as error:  # noqa: BLE001 - a crashed checker is "unknown", not a pass
            return Result(self.name, self.kind, Verdict.UNKNOWN, f"checker crashed: {error!r}")
        if problem is None:
            return Result(self.name, self.kind, Verdict.VALID)
        if isinstance(problem, Unknown):
            return Result(self.name, self.kind, Verdict.UNKNOWN, problem.reason)
        return Result(self.name, self.kind, Verdict.INVALID, problem)

    def violation(self, ctx: CheckContext) -> str | Unknown | None:
        """Return a description of the violation, :class:`Unknown`, or None when it holds."""
        raise NotImplementedError


@dataclass(frozen=True)
class Unknown:
    reason: str


def need_snapshot(ctx: CheckContext) -> Snapshot:
    if ctx.snapshot is None:
        raise _NoSnapshot
    return ctx.snapshot


class _NoSnapshot(Exception):
    def __str__(self) -> str:
        return "no snapshot of the database could be taken"
