"""Toxics as data (JSON round trip, validation) and the loopback-only address rule."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from chaos_model.proxy import (
    Bandwidth,
    ControlServer,
    Down,
    Latency,
    LimitData,
    ProxyServer,
    ResetPeer,
    Slicer,
    SlowClose,
    Timeout,
    Toxic,
    parse_address,
    toxic_from_dict,
    toxic_types,
)

EXAMPLES: list[Toxic] = [
    Latency(latency=120, jitter=15, stream="upstream", toxicity=0.25, name="slow-db"),
    Bandwidth(rate=64),
    Timeout(timeout=0, stream="upstream"),
    Timeout(timeout=500, name="cut-after-500ms"),
    ResetPeer(timeout=20),
    SlowClose(delay=300, toxicity=0.5),
    Slicer(average_size=64, size_variation=16, delay=250),
    LimitData(bytes=4096, stream="upstream"),
    Down(),
]


def test_examples_cover_every_registered_type() -> None:
    assert {t.kind for t in EXAMPLES} == set(toxic_types())


@pytest.mark.parametrize("toxic", EXAMPLES, ids=lambda t: t.name)
def test_json_round_trip(toxic: Toxic) -> None:
    encoded = json.dumps(toxic.to_dict())
    decoded = toxic_from_dict(json.loads(encoded))
    assert decoded == toxic
    assert type(decoded) is type(toxic)
    assert set(json.loads(encoded)) == {"name", "type", "stream", "toxicity", "attributes"}


def test_toxiproxy_shaped_dict() -> None:
    toxic = toxic_from_dict(
        {"type": "latency", "stream": "downstream", "attributes": {"latency": 50, "jitter": 5}}
    )
    assert toxic == Latency(latency=50, jitter=5)
    assert toxic.to_dict() == {
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1.0,
        "attributes": {"latency": 50, "jitter": 5},
    }
    assert Down().name == "down"


@pytest.mark.parametrize(
    "data",
    [
        {"type": "latency", "attributes": {"latency": 1}, "toxicity": 1.5},
        {"type": "latency", "attributes": {"latency": 1}, "stream": "sideways"},
        {"type": "latency", "attributes": {"latency": -1}},
        {"type": "latency", "attributes": {"latency": 1.5}},
        {"type": "latency", "attributes": {"latency": True}},
        {"type": "latency", "attributes": {}},
        {"type": "latency", "attributes": {"latency": 1, "speed": 2}},
        {"type": "latency", "attributes": {"latency": 1}, "colour": "red"},
        {"type": "teleport"},
        {"type": "bandwidth", "attributes": {"rate": 0}},
        {"type": "slicer", "attributes": {"average_size": 10, "size_variation": 10}},
        {"type": "down", "toxicity": 0.5},
        {"type": "latency", "attributes": [1]},
        ["not", "an", "object"],
    ],
)
def test_invalid_toxics_are_rejected(data: Any) -> None:
    with pytest.raises(ValueError):
        toxic_from_dict(data)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5432", ("127.0.0.1", 5432)),
        ("127.3.2.1:0", ("127.3.2.1", 0)),
        ("localhost:80", ("localhost", 80)),
        ("[::1]:8080", ("::1", 8080)),
        ("6000", ("127.0.0.1", 6000)),
    ],
)
def test_loopback_addresses_are_accepted(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text, what="upstream") == expected


@pytest.mark.parametrize(
    "text",
    ["0.0.0.0:80", "10.0.0.5:5432", "192.168.1.10:80", "8.8.8.8:53", "[::]:80", "db.example:5432"],
)
def test_non_loopback_addresses_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        parse_address(text, what="upstream")


def test_proxy_rejects_non_loopback_links_and_control() -> None:
    async def scenario() -> None:
        async with ProxyServer() as proxy:
            with pytest.raises(ValueError, match=r"listen.*loopback"):
                await proxy.add_link("lan", "0.0.0.0:0", "127.0.0.1:5432")
            with pytest.raises(ValueError, match=r"upstream.*loopback"):
                await proxy.add_link("lan", "127.0.0.1:0", "10.1.2.3:5432")
            with pytest.raises(ValueError, match="port"):
                await proxy.add_link("bad", "127.0.0.1:99999", "127.0.0.1:5432")
            assert proxy.links == {}
            with pytest.raises(ValueError, match="loopback"):
                ControlServer(proxy, "0.0.0.0", 0)

    asyncio.run(scenario())
