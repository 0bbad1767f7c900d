"""In-process proxy: many links in one asyncio event loop."""

from __future__ import annotations

import contextlib
import random
import zlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

from ._link import Address, ConflictError, Link, NotFoundError, parse_address
from .toxics import Toxic, toxic_from_dict


class ProxyServer:
    """Hosts named links in the running event loop; the API tests use directly.

    Every method must be called from the loop that runs the proxy. Adding or removing
    a toxic takes effect synchronously on all open connections of the link (no
    round-trip through a task), so switching is well under a millisecond. ``seed``
    makes toxicity draws, jitter and slice sizes reproducible per link.

    Usage::

        async with ProxyServer() as proxy:
            link = await proxy.add_link("api->postgres", "127.0.0.1:0", "127.0.0.1:5432")
            async with proxy.toxic("api->postgres", Latency(latency=100)):
                ...  # connect to link.port
    """

    def __init__(self, *, seed: int | None = None) -> None:
        self._seed = seed
        self._links: dict[str, Link] = {}

    async def __aenter__(self) -> ProxyServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def links(self) -> Mapping[str, Link]:
        """Read-only view of the links by name."""
        return dict(self._links)

    def link(self, name: str) -> Link:
        """The link called ``name``; raises :class:`NotFoundError`."""
        try:
            return self._links[name]
        except KeyError:
            raise NotFoundError(f"no link {name!r}") from None

    async def add_link(self, name: str, listen: str | Address, upstream: str | Address) -> Link:
        """Create and start a link; ``listen`` port 0 picks a free port (see ``.port``).

        Addresses are ``"host:port"`` strings or ``(host, port)`` tuples; only loopback
        hosts are accepted (ValueError otherwise).
        """
        if name in self._links:
            raise ConflictError(f"link {name!r} already exists")
        link = Link(
            name,
            _address(listen, what="listen"),
            _address(upstream, what="upstream"),
            rng=self._rng_for(name),
        )
        await link.start()
        self._links[name] = link
        return link

    async def remove_link(self, name: str) -> None:
        """Stop the link and abort its connections."""
        link = self.link(name)
        del self._links[name]
        await link.close()

    async def add_toxic(self, link: str, toxic: Toxic | Mapping[str, Any]) -> Toxic:
        """Add a toxic (object or JSON dict) to a link; applies to open connections."""
        if not isinstance(toxic, Toxic):
            toxic = toxic_from_dict(toxic)
        await self.link(link).add_toxic(toxic)
        return toxic

    async def remove_toxic(self, link: str, toxic: str) -> None:
        """Remove a toxic by name; open connections return to normal flow at once."""
        await self.link(link).remove_toxic(toxic)

    @asynccontextmanager
    async def toxic(self, link: str, toxic: Toxic | Mapping[str, Any]) -> AsyncIterator[Toxic]:
        """Context manager: the toxic is active inside the ``async with`` block."""
        added = await self.add_toxic(link, toxic)
        try:
            yield added
        finally:
            with contextlib.suppress(NotFoundError):  # already removed, or link gone
                await self.remove_toxic(link, added.name)

    async def reset(self) -> None:
        """Remove every toxic of every link and make every link listen again."""
        for link in tuple(self._links.values()):
            await link.reset()

    async def close(self) -> None:
        """Stop every link."""
        links, self._links = tuple(self._links.values()), {}
        for link in links:
            await link.close()

    def to_dict(self) -> dict[str, Any]:
        """JSON view of all links, keyed by name (the ``GET /links`` body)."""
        return {name: link.to_dict() for name, link in self._links.items()}

    def _rng_for(self, name: str) -> random.Random:
        if self._seed is None:
            return random.Random()
        return random.Random(self._seed ^ zlib.crc32(name.encode()))


def _address(value: str | Address, *, what: str) -> Address:
    if isinstance(value, tuple):
        host, port = value
        return parse_address(f"[{host}]:{port}" if ":" in host else f"{host}:{port}", what=what)
    return parse_address(value, what=what)
