"""A link: one listening port forwarding to one upstream, with toxics applied.

Data path. Each accepted connection has two :class:`_Side` protocols (client and
upstream) and two :class:`_Pipe` directions. With no toxic on a direction the pipe
writes every received chunk straight into the other transport from
``data_received`` (no task, no await); back-pressure pauses the reader when the
writer's buffer is full. With toxics, chunks are queued and a task runs them through
the toxic chain. The pipe falls back to the fast path once toxics are gone and its
queue is drained, so byte order is always preserved.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import socket
import struct
from collections import deque
from functools import partial
from typing import Any, Literal, cast

from .toxics import CloseMode, Stream, Toxic, ToxicRun

_QUEUE_HIGH = 256 * 1024
_QUEUE_LOW = 64 * 1024
_LINGER_RST = struct.pack("ii", 1, 0)


class ProxyError(Exception):
    """Base class of proxy control errors."""


class NotFoundError(ProxyError, LookupError):
    """No link or toxic by that name."""


class ConflictError(ProxyError):
    """A link or toxic by that name already exists."""


Address = tuple[str, int]


def check_loopback(host: str, *, what: str) -> str:
    """Return ``host`` if it is a loopback address, else raise ValueError."""
    if host == "localhost":
        return host
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"{what} host {host!r} is not allowed: use a loopback IP "
            "(127.0.0.0/8, ::1) or 'localhost'"
        ) from None
    if not ip.is_loopback:
        raise ValueError(
            f"{what} address {host!r} is not loopback: only 127.0.0.0/8, ::1 and "
            "'localhost' are allowed"
        )
    return host


def parse_address(text: str, *, what: str, default_host: str = "127.0.0.1") -> Address:
    """Parse ``host:port``, ``[v6]:port`` or a bare ``port``; host must be loopback."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"{what} address must be a non-empty string, got {text!r}")
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = default_host, text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{what} address {text!r}: port must be an integer") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{what} address {text!r}: port out of range")
    return check_loopback(host or default_host, what=what), port


def format_address(addr: Address) -> str:
    """``host:port``, with IPv6 hosts in brackets."""
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Side(asyncio.Protocol):
    """One TCP endpoint of a proxied connection (the client or the upstream socket)."""

    def __init__(self, conn: Connection, role: Literal["client", "upstream"]) -> None:
        self.conn = conn
        self.role = role
        self.transport: asyncio.Transport | None = None
        self.outbound: _Pipe | None = None  # carries bytes read from this side
        self.inbound: _Pipe | None = None  # writes into this side
        self._pauses: set[str] = set()
        self._early: list[bytes] = []  # read before the pipes exist (uvloop reads at once)
        self._early_eof = False

    def pause(self, reason: str) -> None:
        if not self._pauses and self.transport is not None:
            self.transport.pause_reading()
        self._pauses.add(reason)

    def resume(self, reason: str) -> None:
        if reason not in self._pauses:
            return
        self._pauses.discard(reason)
        if not self._pauses and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.conn.side_made(self)

    def data_received(self, data: bytes) -> None:
        pipe = self.outbound
        if pipe is not None:
            pipe.feed(data)
        else:
            self._early.append(data)
            self.pause("connecting")

    def eof_received(self) -> bool:
        pipe = self.outbound
        if pipe is not None:
            pipe.feed_eof()
        else:
            self._early_eof = True
        return True  # keep the socket half-open until the other direction finishes

    def flush_early(self) -> None:
        """Forward what was read before the pipes were wired, then resume reading."""
        pipe = self.outbound
        assert pipe is not None
        early, self._early = self._early, []
        for data in early:
            pipe.feed(data)
        if self._early_eof:
            pipe.feed_eof()
        self.resume("connecting")

    def pause_writing(self) -> None:
        if self.inbound is not None:
            self.inbound.src.pause("peer-buffer-full")

    def resume_writing(self) -> None:
        if self.inbound is not None:
            self.inbound.src.resume("peer-buffer-full")

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.close("abort")


class _Pipe:
    """One direction of a connection: bytes read from ``src`` written to ``dst``."""

    def __init__(self, conn: Connection, src: _Side, dst: _Side, stream: Stream) -> None:
        self.conn = conn
        self.src = src
        self.dst = dst
        self.stream = stream
        self.runs: list[ToxicRun[Any]] = []
        self.eof_done = False
        self._dst_transport = dst.transport
        self._queue: deque[tuple[bytes | None, float]] = deque()
        self._queued = 0
        self._worker: asyncio.Task[None] | None = None

    def feed(self, data: bytes) -> None:
        if self._worker is None and not self.runs:
            assert self._dst_transport is not None
            self._dst_transport.write(data)  # fast path
        else:
            self._enqueue(data)

    def feed_eof(self) -> None:
        if self._worker is None and not self.runs:
            self._forward_eof()
        else:
            self._enqueue(None)

    def shutdown(self) -> None:
        for run in self.runs:
            run.stop()
        self.runs.clear()
        self._queue.clear()
        if self._worker is not None and self._worker is not _current_task():
            self._worker.cancel()

    def _enqueue(self, data: bytes | None) -> None:
        loop = asyncio.get_running_loop()
        self._queue.append((data, loop.time()))
        if data is not None:
            self._queued += len(data)
            if self._queued > _QUEUE_HIGH:
                self.src.pause("toxic-queue-full")
        if self._worker is None:
            self._worker = loop.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._queue and not self.conn.closed:
                data, arrived = self._queue.popleft()
                if data is None:
                    for run in tuple(self.runs):
                        if run.active:
                            await run.eof()
                    self._forward_eof()
                    continue
                self._queued -= len(data)
                if self._queued <= _QUEUE_LOW:
                    self.src.resume("toxic-queue-full")
                await self._through(tuple(self.runs), 0, data, arrived)
        except Exception as exc:  # noqa: BLE001 - a toxic bug must not hang the connection
            asyncio.get_running_loop().call_exception_handler(
                {
                    "message": f"toxic pipeline failed on link {self.conn.link.name!r}",
                    "exception": exc,
                }
            )
            self.conn.close("abort")
        finally:
            self._worker = None

    async def _through(
        self, chain: tuple[ToxicRun[Any], ...], index: int, data: bytes, arrived: float
    ) -> None:
        if index == len(chain):
            if not self.conn.closed and data and self._dst_transport is not None:
                self._dst_transport.write(data)
            return
        run = chain[index]
        nxt = partial(self._through, chain, index + 1)
        if run.active:
            await run.process(data, arrived, nxt)
        else:
            await nxt(data, arrived)

    def _forward_eof(self) -> None:
        if self.eof_done or self.conn.closed:
            return
        self.eof_done = True
        transport = self._dst_transport
        if transport is not None and not transport.is_closing() and transport.can_write_eof():
            transport.write_eof()
        self.conn.direction_finished()


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


class Connection:
    """One proxied TCP connection of a link (client socket + upstream socket)."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.closed = False
        self.client = _Side(self, "client")
        self.upstream: _Side | None = None
        self.pipes: dict[Stream, _Pipe] = {}
        self._runs: dict[str, tuple[_Pipe, ToxicRun[Any]]] = {}
        self._connect_task: asyncio.Task[None] | None = None

    @property
    def rng(self) -> random.Random:
        return self.link.rng

    def side_made(self, side: _Side) -> None:
        if self.closed:
            assert side.transport is not None
            side.transport.abort()
        elif side.role == "client":
            side.pause("connecting")
            self._connect_task = asyncio.get_running_loop().create_task(self._connect())
        else:
            self._wire(side)

    async def _connect(self) -> None:
        host, port = self.link.upstream
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: _Side(self, "upstream"), host, port)
        except OSError:
            self.close("abort")

    def _wire(self, upstream: _Side) -> None:
        self.upstream = upstream
        client = self.client
        up = _Pipe(self, client, upstream, "upstream")
        down = _Pipe(self, upstream, client, "downstream")
        self.pipes = {"upstream": up, "downstream": down}
        client.outbound = upstream.inbound = up
        upstream.outbound = client.inbound = down
        for toxic in self.link.toxics:
            if not toxic.link_level:
                self.apply(toxic)
        client.flush_early()

    def apply(self, toxic: Toxic) -> None:
        """Start ``toxic`` on this connection with probability ``toxic.toxicity``."""
        if not self.pipes or self.closed:
            return  # still connecting: picked up by _wire
        if toxic.toxicity < 1.0 and self.rng.random() >= toxic.toxicity:
            return
        pipe = self.pipes[toxic.stream]
        run = toxic.run(self)
        pipe.runs.append(run)
        self._runs[toxic.name] = (pipe, run)

    def unapply(self, name: str) -> None:
        """Stop the toxic called ``name`` on this connection, if it was applied."""
        entry = self._runs.pop(name, None)
        if entry is not None:
            pipe, run = entry
            run.stop()
            if run in pipe.runs:
                pipe.runs.remove(run)

    def direction_finished(self) -> None:
        if all(pipe.eof_done for pipe in self.pipes.values()):
            self.close("graceful")

    def close(self, how: CloseMode) -> None:
        """Close both sockets (idempotent); see :data:`CloseMode`."""
        if self.closed:
            return
        self.closed = True
        self.link.forget(self)
        if self._connect_task is not None and not self._connect_task.done():
            self._connect_task.cancel()
        for pipe in self.pipes.values():
            pipe.shutdown()
        self._runs.clear()
        for side in (self.client, self.upstream):
            transport = side.transport if side is not None else None
            if transport is None:
                continue
            if how == "reset":
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
            if how == "graceful":
                transport.close()
            else:
                transport.abort()


class Link:
    """A named TCP forwarder ``listen`` -> ``upstream`` carrying a list of toxics.

    Toxics apply to open connections as well as new ones; ``down`` toxics close the
    listener and abort every open connection until they are all removed.
    """

    def __init__(
        self, name: str, listen: Address, upstream: Address, *, rng: random.Random
    ) -> None:
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"link name must be a non-empty string without '/', got {name!r}")
        host = "127.0.0.1" if listen[0] == "localhost" else listen[0]
        self.name = name
        self.listen: Address = (check_loopback(host, what="listen"), listen[1])
        self.upstream: Address = (check_loopback(upstream[0], what="upstream"), upstream[1])
        self.rng = rng
        self._toxics: dict[str, Toxic] = {}
        self._connections: set[Connection] = set()
        self._server: asyncio.Server | None = None
        self._closed = False

    @property
    def port(self) -> int:
        """The listening port (the real one once started, even if 0 was asked)."""
        return self.listen[1]

    @property
    def toxics(self) -> tuple[Toxic, ...]:
        return tuple(self._toxics.values())

    @property
    def enabled(self) -> bool:
        """False while any link-level (``down``) toxic is present."""
        return not any(t.link_level for t in self._toxics.values())

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        """Open the listening socket (records the picked port when 0 was asked)."""
        if self._server is not None or self._closed:
            return
        loop = asyncio.get_running_loop()
        host, port = self.listen
        self._server = await loop.create_server(self._accept, host, port, reuse_address=True)
        if port == 0:
            self.listen = (host, self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and abort every connection."""
        self._closed = True
        self._stop_listening()
        self._abort_all()

    async def add_toxic(self, toxic: Toxic) -> None:
        if toxic.name in self._toxics:
            raise ConflictError(f"toxic {toxic.name!r} already exists on link {self.name!r}")
        self._toxics[toxic.name] = toxic
        if toxic.link_level:
            self._stop_listening()
            self._abort_all()
        else:
            for conn in tuple(self._connections):
                conn.apply(toxic)

    async def remove_toxic(self, name: str) -> None:
        toxic = self._toxics.pop(name, None)
        if toxic is None:
            raise NotFoundError(f"no toxic {name!r} on link {self.name!r}")
        if toxic.link_level:
            if self.enabled:
                await self.start()
        else:
            for conn in tuple(self._connections):
                conn.unapply(name)

    async def reset(self) -> None:
        """Remove every toxic and make sure the link listens."""
        for name in tuple(self._toxics):
            await self.remove_toxic(name)
        await self.start()

    def forget(self, conn: Connection) -> None:
        self._connections.discard(conn)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": format_address(self.listen),
            "upstream": format_address(self.upstream),
            "enabled": self.enabled,
            "toxics": [t.to_dict() for t in self._toxics.values()],
            "connections": len(self._connections),
        }

    def _accept(self) -> _Side:
        conn = Connection(self)
        self._connections.add(conn)
        return conn.client

    def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()  # closes the listening socket synchronously
            self._server = None

    def _abort_all(self) -> None:
        for conn in tuple(self._connections):
            conn.close("abort")
