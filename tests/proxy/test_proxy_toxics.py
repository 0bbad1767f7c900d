"""Data-path tests of the fault proxy: real sockets, an asyncio echo server, no mocks.

Every wait has a deadline and names what it waited for; no test sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar, cast

import pytest

from chaos_model.proxy import (
    Bandwidth,
    ConflictError,
    Down,
    Latency,
    LimitData,
    Link,
    NotFoundError,
    ProxyServer,
    ResetPeer,
    Slicer,
    SlowClose,
    Timeout,
)

T = TypeVar("T")
TEST_DEADLINE = 10.0


LOOPS = [
    "asyncio",
    pytest.param(
        "uvloop",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("uvloop") is None, reason="uvloop not installed"
        ),
    ),
]


def async_test(fn: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[str], None]:
    """Run the coroutine test on each event loop the proxy supports, with a deadline."""

    @pytest.mark.parametrize("loop_kind", LOOPS)
    def wrapper(loop_kind: str) -> None:
        main = within(fn(), TEST_DEADLINE, f"test {fn.__name__} to finish")
        if loop_kind == "uvloop":
            import uvloop

            uvloop.run(main)
        else:
            asyncio.run(main)

    wrapper.__name__ = fn.__name__
    wrapper.__qualname__ = fn.__qualname__
    wrapper.__doc__ = fn.__doc__
    return wrapper


async def within(aw: Awaitable[T], seconds: float, what: str) -> T:
    try:
        return await asyncio.wait_for(aw, seconds)
    except TimeoutError:
        raise AssertionError(f"timed out after {seconds}s waiting for {what}") from None


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


class EchoStack:
    """An echo server behind a proxy link; closes every client it opened on exit."""

    def __init__(self, proxy: ProxyServer, link: Link) -> None:
        self.proxy = proxy
        self.link = link
        self.writers: list[asyncio.StreamWriter] = []

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await within(
            asyncio.open_connection("127.0.0.1", self.link.port), 2, f"connect to {self.link.name}"
        )
        self.writers.append(writer)
        return reader, writer

    async def close_clients(self) -> None:
        for writer in self.writers:
            writer.close()
        for writer in self.writers:
            with suppress(ConnectionError):
                await within(writer.wait_closed(), 2, "client socket to close")


@asynccontextmanager
async def proxied_echo() -> AsyncIterator[EchoStack]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proxy = ProxyServer(seed=1234)
    try:
        link = await proxy.add_link("client->echo", "127.0.0.1:0", f"127.0.0.1:{port}")
        stack = EchoStack(proxy, link)
        try:
            yield stack
        finally:
            await stack.close_clients()
    finally:
        await proxy.close()
        server.close()
        await server.wait_closed()


async def round_trip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes, limit: float = 3
) -> float:
    start = time.perf_counter()
    writer.write(payload)
    echoed = await within(reader.readexactly(len(payload)), limit, f"echo of {len(payload)} B")
    assert echoed == payload
    return time.perf_counter() - start


async def read_to_eof(reader: asyncio.StreamReader, limit: float, what: str) -> bytes:
    return await within(reader.read(), limit, what)


@async_test
async def test_plain_forwarding_keeps_bytes_intact() -> None:
    async with proxied_echo() as stack:
        reader, writer = await stack.connect()
        payload = bytes(range(256)) * 4096  # 1 MiB
        await round_trip(reader, writer, payload)
        writer.close()


@async_test
async def test_latency_delays_both_directions_on_an_open_connection() -> None:
    async with proxied_echo() as stack:
        proxy, link = stack.proxy, stack.link
        reader, writer = await stack.connect()
        assert await round_trip(reader, writer, b"warm") < 0.1
        await proxy.add_toxic(link.name, Latency(latency=100, stream="upstream"))
        await proxy.add_toxic(link.name, Latency(latency=100, jitter=10, stream="downstream"))
        rtt = await round_trip(reader, writer, b"ping")
        assert rtt >= 0.19, f"round trip {rtt * 1000:.0f} ms, expected >= 190 ms"


@async_test
async def test_bandwidth_limits_throughput() -> None:
    async with proxied_echo() as stack:
        proxy, link = stack.proxy, stack.link
        reader, writer = await stack.connect()
        await proxy.add_toxic(link.name, Bandwidth(rate=100))  # 100 KB/s downstream
        elapsed = await round_trip(reader, writer, b"x" * 40_000)
        # 40 kB at 100 kB/s = 0.4 s (Toxiproxy-style budget may release the first piece early)
        assert elapsed >= 0.3, f"40 kB took {elapsed:.3f}s, expected >= 0.3 s at 100 KB/s"


@async_test
async def test_timeout_zero_holds_data_until_removed() -> None:
    async with proxied_echo() as stack:
        proxy, link = stack.proxy, stack.link
        reader, writer = await stack.connect()
        await proxy.add_toxic(link.name, Timeout(timeout=0))
        writer.write(b"held")
        pending = asyncio.ensure_future(reader.read(100))
        done, _ = await asyncio.wait({pending}, timeout=0.3)
        assert not done, "data passed through a timeout toxic"
        await proxy.remove_toxic(link.name, "timeout_downstream")
        assert await within(pending, 1, "held data after removing timeout") == b"held"


@async_test
async def test_timeout_closes_connection_after_delay() -> None:
    async with proxied_echo() as stack:
        proxy, link = stack.proxy, stack.link
        reader, writer = await stack.connect()
        start = time.perf_counter()
        await proxy.add_toxic(link.name, Timeout(timeout=150, stream="upstream"))
        writer.write(b"never answered")
        assert await read_to_eof(reader, 2, "close by timeout toxic") == b""
        elapsed = time.perf_counter() - start
        assert elapsed >= 0.14, f"closed after {elapsed * 1000:.0f} ms, expected ~150 ms"


@async_test
async def test_reset_peer_sends_rst() -> None:
    async with proxied_echo() as stack:
        proxy, link = stack.proxy, stack.link
        reader, writer = await stack.connect()
        await proxy.add_toxic(link.name, ResetPeer(timeout=100, stream="upstream"))
        start = time.perf_counter()
        writer.write(b"request")
        with pytest.raises(ConnectionResetError):
            await within(reader.read(100), 2, "RST from reset_peer")
        elapsed = time.perf_counter() - start
        assert elapsed >= 0.09, f"reset after {elapsed * 1000:.0f} ms, expected ~100 ms"


@async_test
async def test_slow_close_delays_the_close() -> None:
    async with proxied_echo() as stack:
        proxy, link = stack.proxy, stack.link
        reader, writer = await stack.connect()
        await proxy.add_toxic(link.name, SlowClose(delay=300))
        await round_trip(reader, writer, b"data flows normally", limit=0.5)
        start = time.perf_counter()
        writer.write_eof()  # the echo server answers by closing
        assert await read_to_eof(reader, 2, "delayed close") == b""
        elapsed = time.perf_counter() - start
        assert elapsed >= 0.29, f"close seen after {elapsed * 1000:.0f} ms, expected >= 300 ms"


class _Collector(asyncio.Protocol):
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.changed = asyncio.Event()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.changed.set()

    async def wait_bytes(self, count: int, seconds: float) -> bytes:
        async def until() -> None:
            while sum(map(len, self.chunks)) < count:
                self.changed.clear()
                await self.changed.wait()

        await within(until(), seconds, f"{count} bytes (got {sum(map(len, self.chunks))})")
        return b"".join(self.chunks)


@async_test
async def test_slicer_splits_writes_into_small_chunks() -> None:
    async with proxied_echo() as stack:
        proxy, link = stack.proxy, stack.link
        await proxy.add_toxic(link.name, Slicer(average_size=100, size_variation=20, delay=2000))
        loop = asyncio.get_running_loop()
        transport, collector = await loop.create_connection(_Collector, "127.0.0.1", link.port)
        payload = bytes(range(256)) * 8  # 2048 bytes
        transport.write(payload)
        assert await collector.wait_bytes(len(payload), 3) == payload
        sizes = [len(c) for c in collector.chunks]
        assert len(sizes) >= 8, f"expected many small reads, got sizes {sizes}"
        assert max(sizes) <= 240, f"a read larger than two slices: {sizes}"
        transport.close()


@async_test
async def test_limit_data_closes_after_n_bytes() -> None:
    async with proxied_echo() as stack:
        proxy, link = stack.proxy, stack.link
        reader, writer = await stack.connect()
        await proxy.add_toxic(link.name, LimitData(bytes=100))
        writer.write(b"a" * 300)
        received = await read_to_eof(reader, 2, "close after 100 bytes")
        assert received == b"a" * 100


@async_test
async def test_down_refuses_new_and_cuts_open_connections() -> None:
    async with proxied_echo() as stack:
        proxy, link = stack.proxy, stack.link
        reader, writer = await stack.connect()
        await round_trip(reader, writer, b"before")
        await proxy.add_toxic(link.name, Down())
        assert not link.enabled
        try:
            cut = await within(reader.read(100), 1, "open connection to be cut")
            assert cut == b""
        except ConnectionResetError:
            pass
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", link.port)
        await proxy.remove_toxic(link.name, "down")
        reader2, writer2 = await stack.connect()
        await round_trip(reader2, writer2, b"after")


@async_test
async def test_toxicity_zero_never_affects() -> None:
    async with proxied_echo() as stack:
        proxy, link = stack.proxy, stack.link
        opened = [await stack.connect() for _ in range(3)]
        await proxy.add_toxic(link.name, Latency(latency=1000, toxicity=0.0, stream="upstream"))
        opened += [await stack.connect() for _ in range(3)]
        for reader, writer in opened:
            assert await round_trip(reader, writer, b"fast", limit=0.5) < 0.5


@async_test
async def test_toxicity_is_drawn_per_connection() -> None:
    async with proxied_echo() as stack:
        proxy, link = stack.proxy, stack.link
        await proxy.add_toxic(link.name, Latency(latency=300, toxicity=0.5))
        conns = [await stack.connect() for _ in range(16)]
        rtts = await asyncio.gather(*(round_trip(r, w, b"?") for r, w in conns))
        slow = sum(rtt >= 0.29 for rtt in rtts)
        assert 0 < slow < len(conns), f"{slow}/16 connections affected at toxicity 0.5"


@async_test
async def test_removing_a_toxic_restores_flow_on_an_open_connection() -> None:
    async with proxied_echo() as stack:
        proxy, link = stack.proxy, stack.link
        reader, writer = await stack.connect()
        await proxy.add_toxic(link.name, Latency(latency=2000))
        writer.write(b"in flight")
        pending = asyncio.ensure_future(reader.readexactly(9))
        done, _ = await asyncio.wait({pending}, timeout=0.1)
        assert not done
        start = time.perf_counter()
        await proxy.remove_toxic(link.name, "latency_downstream")
        assert await within(pending, 0.5, "in-flight bytes released on removal") == b"in flight"
        assert time.perf_counter() - start < 0.5
        assert await round_trip(reader, writer, b"normal again") < 0.1


@async_test
async def test_switching_a_toxic_is_fast_with_open_connections() -> None:
    async with proxied_echo() as stack:
        proxy, link = stack.proxy, stack.link
        conns = [await stack.connect() for _ in range(20)]
        for reader, writer in conns[:3]:
            await round_trip(reader, writer, b"open")
        start = time.perf_counter()
        await proxy.add_toxic(link.name, Latency(latency=50))
        added = time.perf_counter() - start
        start = time.perf_counter()
        await proxy.remove_toxic(link.name, "latency_downstream")
        removed = time.perf_counter() - start
        assert added < 0.05 and removed < 0.05, (
            f"add {added * 1e3:.2f} ms, remove {removed * 1e3:.2f} ms"
        )


@async_test
async def test_unreachable_upstream_closes_the_client() -> None:
    probe = await asyncio.start_server(_echo, "127.0.0.1", 0)
    dead_port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    async with ProxyServer() as proxy:
        link = await proxy.add_link("to-nowhere", "127.0.0.1:0", f"127.0.0.1:{dead_port}")
        stack = EchoStack(proxy, link)
        reader, _ = await stack.connect()
        with suppress(ConnectionResetError):
            assert await read_to_eof(reader, 2, "client close after refused upstream") == b""
        await stack.close_clients()


@async_test
async def test_duplicate_and_unknown_names_are_errors() -> None:
    async with proxied_echo() as stack:
        proxy, link = stack.proxy, stack.link
        await proxy.add_toxic(link.name, Latency(latency=1))
        with pytest.raises(ConflictError):
            await proxy.add_toxic(link.name, Latency(latency=2))
        with pytest.raises(NotFoundError):
            await proxy.remove_toxic(link.name, "nope")
        with pytest.raises(NotFoundError):
            await proxy.add_toxic("no-such-link", Latency(latency=1))
        with pytest.raises(ConflictError):
            await proxy.add_link(link.name, "127.0.0.1:0", "127.0.0.1:1")
        await proxy.reset()
        assert link.toxics == ()
