"""Free loopback ports for the services of a stack."""

from __future__ import annotations

import random
import socket
from pathlib import Path

from chaos_model.errors import StackError

PORT_FLOOR = 20000
#: ports this process handed out already (a port is free until its service binds it)
handed_out: set[int] = set()


def ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A free loopback port below the ephemeral range.

    A port the kernel hands out for ``bind(0)`` comes from the range it also uses for outgoing
    connections, so between choosing it and the service binding it, any client (the proxy's
    upstream connections, a database pool) may take it; ports below that range are only ever
    taken on purpose.
    """
    low, _ = ephemeral_range()
    for _ in range(200):
        port = random.randint(PORT_FLOOR, max(PORT_FLOOR + 1000, low - 1))
        if port in handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        handed_out.add(port)
        return port
    raise StackError("no free loopback port found below the ephemeral port range")
