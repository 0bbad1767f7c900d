"""The contract every stack backend fulfils, whatever starts the services.

A stack is the running system under test. Its services can be paused, resumed, killed, started
and restarted one by one; the stack as a whole can be healed (undo every fault) and reset (empty
every store between examples). Abilities a backend lacks raise
:class:`~chaos_model.errors.UnsupportedFault` rather than pretending.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Protocol, Self, runtime_checkable

from chaos_model.adapter import TargetSpec


@dataclass(frozen=True)
class Endpoints:
    database_url: str
    nats_url: str
    nats_monitor_url: str
    api_url: str
    llm_url: str
    webhook_secret: str
    #: the fault proxy's control API, and the URLs clients outside the stack use (through it)
    proxy_url: str = ""
    dashboard_api_url: str = ""
    telegram_api_url: str = ""
    #: the Telegram Bot API fake's control and API URL (direct), when the stack runs it
    bot_api_url: str = ""
    #: each target service's own base URL (direct, not through the proxy), by name
    service_urls: Mapping[str, str] = field(default_factory=dict)
    #: each target service's busy check (a JSON count of tasks running), by name
    busy_urls: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, str]:
        """Every URL (not the secret), each service's as ``<name>_url``."""
        urls = {f.name: getattr(self, f.name) for f in fields(self) if f.name.endswith("_url")}
        return {**urls, **{f"{name}_url": url for name, url in self.service_urls.items()}}


class Stoppable:
    """A context manager that starts the object on entry (unless it runs) and stops it on exit."""

    _started = False

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        if not self._started:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@runtime_checkable
class Service(Protocol):
    name: str

    def is_running(self) -> bool: ...
    def is_paused(self) -> bool: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def kill(self) -> None: ...
    def start(self) -> None: ...
    def restart(self) -> None: ...
    def wait_ready(self, timeout: float | None = None) -> None: ...


@runtime_checkable
class Stack(Protocol):
    backend: str

    @property
    def target(self) -> TargetSpec:
        """The adapter of the system this stack runs or attaches to."""
        ...

    @property
    def endpoints(self) -> Endpoints: ...
    @property
    def services(self) -> Mapping[str, Service]: ...
    def heal(self) -> list[str]: ...
    def reset(self) -> float: ...
    def stop(self) -> None: ...


def target_endpoints(
    target: TargetSpec,
    *,
    database_url: str,
    nats_url: str,
    nats_monitor_url: str,
    llm_url: str,
    webhook_secret: str,
    service_urls: Mapping[str, str],
    render: Callable[[str, str], str],
    proxy_url: str = "",
    link_urls: Mapping[str, str] | None = None,
    bot_api_url: str = "",
) -> Endpoints:
    """A target's endpoints: its services' URLs, the URLs Telegram and the dashboard reach them
    at (through their links when the stack has a proxy), and each busy check rendered by
    ``render(service, template)``."""
    links = link_urls or {}
    webhook = target.webhook.service
    dashboard = target.dashboard.service if target.dashboard else ""
    dashboard_url = links.get(f"dashboard->{dashboard}") or service_urls.get(dashboard, "")
    return Endpoints(
        database_url=database_url,
        nats_url=nats_url,
        nats_monitor_url=nats_monitor_url,
        api_url=service_urls[webhook],
        llm_url=llm_url,
        webhook_secret=webhook_secret,
        proxy_url=proxy_url,
        bot_api_url=bot_api_url,
        dashboard_api_url=dashboard_url,
        telegram_api_url=links.get(f"telegram->{webhook}") or service_urls[webhook],
        service_urls=dict(service_urls),
        busy_urls={
            name: render(name, spec.busy.url)
            for name, spec in target.services.items()
            if spec.busy is not None
        },
    )
