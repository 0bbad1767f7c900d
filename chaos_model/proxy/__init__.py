"""Network fault proxy: Toxiproxy's model (links + toxics as data) in pure asyncio.

One asyncio process hosts many links (``name``, loopback ``listen`` address,
loopback ``upstream`` address). Toxics are frozen dataclasses with a JSON form
``{"name", "type", "stream", "toxicity", "attributes"}`` and apply to open
connections as soon as they are added. Three ways to drive it:

* :class:`ProxyServer` in-process from asyncio code;
* :class:`ControlServer` HTTP/JSON API, and :class:`ProxyClient` (sync) to call it;
* ``python -m chaos_model.proxy --control HOST:PORT --link ... --ready-file PATH``.
"""

from ._control import ControlServer, ProxyAPIError, ProxyClient
from ._link import ConflictError, Link, NotFoundError, ProxyError, parse_address
from ._server import ProxyServer
from .toxics import (
    STREAMS,
    Bandwidth,
    Down,
    Latency,
    LimitData,
    ResetPeer,
    Slicer,
    SlowClose,
    Stream,
    Timeout,
    Toxic,
    toxic_from_dict,
    toxic_types,
)

__all__ = [
    "STREAMS",
    "Bandwidth",
    "ConflictError",
    "ControlServer",
    "Down",
    "Latency",
    "LimitData",
    "Link",
    "NotFoundError",
    "ProxyAPIError",
    "ProxyClient",
    "ProxyError",
    "ProxyServer",
    "ResetPeer",
    "Slicer",
    "SlowClose",
    "Stream",
    "Timeout",
    "Toxic",
    "parse_address",
    "toxic_from_dict",
    "toxic_types",
]
