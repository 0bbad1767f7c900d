"""Toxic data model, JSON mapping, registry and the per-connection runtime base.

A *toxic* is pure data (a frozen dataclass). When a toxic affects one direction of
one proxied connection, the link creates a :class:`ToxicRun` for it: the run holds
the per-connection state (timers, byte counters) and transforms the bytes that flow
through that direction.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

Stream = Literal["upstream", "downstream"]
"""``upstream`` = client -> server bytes, ``downstream`` = server -> client bytes."""

STREAMS: tuple[Stream, ...] = ("upstream", "downstream")

CloseMode = Literal["graceful", "abort", "reset"]
"""How a toxic closes a connection: ``graceful`` flushes already forwarded bytes then
sends FIN, ``abort`` drops buffered bytes, ``reset`` sends RST (SO_LINGER 0)."""

Emit = Callable[[bytes, float], Awaitable[None]]
"""Pass ``(data, arrival_time)`` on to the next toxic of the chain (or the socket)."""

_BASE_FIELDS = frozenset({"name", "stream", "toxicity"})
_REGISTRY: dict[str, type[Toxic]] = {}


class ConnectionHandle(Protocol):
    """What a running toxic may do to the connection it affects."""

    @property
    def rng(self) -> random.Random:
        """Random source for jitter / slice sizes (seedable per link)."""
        ...

    def close(self, how: CloseMode) -> None:
        """Close both sockets of the proxied connection."""
        ...


@dataclass(frozen=True, kw_only=True)
class Toxic:
    """Base class of every toxic: a named, directional, probabilistic network fault.

    ``stream`` selects the direction affected (``upstream`` = client->server,
    ``downstream`` = server->client). ``toxicity`` is the probability (0..1) that a
    given connection is affected; it is drawn once per (toxic, connection), when the
    connection opens or when the toxic is added to an already open connection.
    ``name`` defaults to ``"<type>_<stream>"`` and is unique within a link.
    """

    kind: ClassVar[str] = ""
    link_level: ClassVar[bool] = False

    name: str = ""
    stream: Stream = "downstream"
    toxicity: float = 1.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if kind:
            if kind in _REGISTRY:
                raise TypeError(f"toxic type {kind!r} registered twice")
            _REGISTRY[kind] = cls

    def __post_init__(self) -> None:
        if self.stream not in STREAMS:
            raise ValueError(f"stream must be 'upstream' or 'downstream', got {self.stream!r}")
        tox = self.toxicity
        if isinstance(tox, bool) or not isinstance(tox, int | float) or not 0.0 <= tox <= 1.0:
            raise ValueError(f"toxicity must be a number in [0, 1], got {tox!r}")
        object.__setattr__(self, "toxicity", float(tox))
        if not isinstance(self.name, str):
            raise ValueError(f"toxic name must be a string, got {self.name!r}")
        if not self.name:
            object.__setattr__(self, "name", f"{self.kind}_{self.stream}")
        for f in fields(self):
            if f.name not in _BASE_FIELDS:
                value = getattr(self, f.name)
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(
                        f"{self.kind}.{f.name} must be a non-negative integer, got {value!r}"
                    )
        self._validate()

    def _validate(self) -> None:
        """Type-specific checks; raise ValueError on invalid attributes."""

    def attributes(self) -> dict[str, int]:
        """The type-specific attributes, as in Toxiproxy's ``attributes`` object."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _BASE_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``{name, type, stream, toxicity, attributes}``."""
        return {
            "name": self.name,
            "type": self.kind,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": self.attributes(),
        }

    def run(self, conn: ConnectionHandle) -> ToxicRun[Any]:
        """Create the runtime acting on one direction of ``conn``."""
        return ToxicRun(self, conn)


def toxic_types() -> dict[str, type[Toxic]]:
    """Registered toxic classes by JSON ``type`` name."""
    return dict(_REGISTRY)


def toxic_from_dict(data: Mapping[str, Any]) -> Toxic:
    """Build a toxic from its JSON dict; raise ValueError on any malformed input."""
    if not isinstance(data, Mapping):
        raise ValueError(f"toxic must be a JSON object, got {type(data).__name__}")
    unknown = set(data) - {"name", "type", "stream", "toxicity", "attributes"}
    if unknown:
        raise ValueError(f"unknown toxic keys: {sorted(unknown)}")
    kind = data.get("type")
    cls = _REGISTRY.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown toxic type {kind!r}; known: {sorted(_REGISTRY)}")
    attrs = data.get("attributes") or {}
    if not isinstance(attrs, Mapping):
        raise ValueError("toxic 'attributes' must be a JSON object")
    allowed = {f.name for f in fields(cls)} - _BASE_FIELDS
    extra = set(attrs) - allowed
    if extra:
        raise ValueError(
            f"unknown attributes for {kind}: {sorted(extra)}; allowed: {sorted(allowed)}"
        )
    kwargs: dict[str, Any] = dict(attrs)
    for key in ("name", "stream", "toxicity"):
        if key in data:
            kwargs[key] = data[key]
    try:
        return cls(**kwargs)
    except TypeError as exc:  # missing required attribute
        raise ValueError(f"invalid {kind} toxic: {exc}") from None


ToxicT = TypeVar("ToxicT", bound=Toxic)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class ToxicRun(Generic[ToxicT]):
    """One toxic acting on one direction of one connection (pass-through by default).

    Subclasses override :meth:`process` (transform a chunk), :meth:`eof` (before the
    end-of-stream is forwarded) and :meth:`stop` (clean-up when removed). Every wait
    goes through :meth:`sleep`, which returns early once the toxic is removed, so a
    removal restores normal flow at once.
    """

    def __init__(self, toxic: ToxicT, conn: ConnectionHandle) -> None:
        self.toxic = toxic
        self.conn = conn
        self.active = True
        self._waiters: set[asyncio.Future[None]] = set()

    def stop(self) -> None:
        """The toxic was removed (or the connection closed): release every wait."""
        self.active = False
        for fut in self._waiters:
            _resolve(fut)
        self._waiters.clear()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (``math.inf`` = until removed); returns early on removal."""
        if not self.active or seconds <= 0:
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        handle = None if math.isinf(seconds) else loop.call_later(seconds, _resolve, fut)
        self._waiters.add(fut)
        try:
            await fut
        finally:
            if handle is not None:
                handle.cancel()
            self._waiters.discard(fut)

    async def process(self, data: bytes, arrived: float, emit: Emit) -> None:
        """Handle one chunk that arrived at loop time ``arrived``; default: forward."""
        await emit(data, arrived)

    async def eof(self) -> None:
        """Called before the end-of-stream is forwarded; default: nothing."""


def loop_time() -> float:
    """Current event-loop time (the clock used for chunk arrival stamps)."""
    return asyncio.get_running_loop().time()
