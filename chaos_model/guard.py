"""The environment guard: refuse to inject faults into anything but a test stack on this machine.

:func:`ensure_injectable` is called once before any fault is injected (``runner.run``,
``replay.replay``, the pytest plugin's ``chaos_machine``). It passes only when

* the stack was started by chaos-model (a :class:`~chaos_model.stack.LocalStack`, or a
  :class:`~chaos_model.lease.RemoteStack` whose descriptor says ``"started_by":
  "chaos-model"``), or ``CHAOS_MODEL_TEST_ENVIRONMENT=1`` marks an externally managed stack as a
  test environment, or the stack says it is one (``test_environment``: a compose project whose
  containers all carry the ``com.chaos-model.test-environment`` label); and
* every endpoint host (database, NATS, API, LLM, the control URL, any other ``*_url``) is a
  loopback address: 127.0.0.0/8, ::1 or ``localhost``. The variable does not lift this one.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from chaos_model.errors import UnsafeTarget

ENV_VAR = "CHAOS_MODEL_TEST_ENVIRONMENT"
STARTED_BY = "chaos-model"


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _hosts(name: str, url: str) -> list[str]:
    """Every host a URL points at ("" for a local Unix socket); NATS may list several."""
    hosts: list[str] = []
    for part in url.split(","):
        part = part.strip()
        if not part:
            continue
        if "://" not in part:
            part = f"tcp://{part}"
        split = urlsplit(part)
        host = split.hostname or ""
        if not host and name.startswith("database"):
            socket = parse_qs(split.query).get("host", [""])[0]
            host = "" if not socket or socket.startswith("/") else socket
        elif not host:
            host = "(no host)"
        hosts.append(host)
    return hosts


def _urls(stack: Any) -> dict[str, str]:
    urls: dict[str, str] = {}
    endpoints = stack.endpoints
    if dataclasses.is_dataclass(endpoints) and not isinstance(endpoints, type):
        values = dataclasses.asdict(endpoints)
    else:
        values = dict(vars(endpoints))
    for key, value in values.items():
        if key.endswith("_url") and isinstance(value, str) and value:
            urls[key.removesuffix("_url")] = value
        elif key.endswith("_urls") and isinstance(value, Mapping):
            for name, url in value.items():
                if isinstance(url, str) and url:
                    urls[f"{name} ({key.removesuffix('_urls')})"] = url
    control = getattr(stack, "control_url", None)
    if isinstance(control, str) and control:
        urls["control"] = control
    return urls


def ensure_injectable(stack: Any) -> None:
    """Raise :class:`UnsafeTarget` (one line) unless faults may be injected into ``stack``."""
    started_by = getattr(stack, "started_by", None)
    labelled = getattr(stack, "test_environment", False) is True
    if started_by != STARTED_BY and not labelled and os.environ.get(ENV_VAR) != "1":
        who = f"started by {started_by!r}" if started_by else "not started by chaos-model"
        raise UnsafeTarget(
            f"refusing to inject faults: the {getattr(stack, 'backend', '?')} stack was {who};"
            f" set {ENV_VAR}=1 only if it is an externally managed test environment"
        )
    for name, url in _urls(stack).items():
        for host in _hosts(name, url):
            if host and not is_loopback(host):
                raise UnsafeTarget(
                    f"refusing to inject faults: the {name} endpoint {host!r} is not a loopback"
                    " address; chaos-model only targets stacks on this machine (127.0.0.0/8,"
                    " ::1, localhost)"
                )
