"""The ``[compose]`` section of an adapter: how the compose backend runs the target.

The compose file is the target's own; chaos-model starts it as a project of its own on free
loopback ports and tells it those ports (and a few other values) through compose variables, all
derived from the adapter (see :func:`port_variable`, :func:`link_variable` and
:data:`VARIABLES`):

* ``CHAOS_<SERVICE>_PORT`` for every service's ``{port}``, ``CHAOS_<SERVICE>_<NAME>_PORT`` for
  each of its extra ``{ports[NAME]}``: the host ports it is reached on (a container on the host
  network listens on them, one on a compose network publishes its port there); the
  infrastructure's are ``CHAOS_POSTGRES_PORT``, ``CHAOS_NATS_PORT``, ``CHAOS_NATS_MONITOR_PORT``
  and ``CHAOS_LLM_PORT``;
* ``CHAOS_<CLIENT>_<SERVER>_LINK`` for every faultable link ``client->server``: the loopback port
  of the fault proxy the client connects to (so the client runs on the host network);
* ``CHAOS_BUGS``, ``CHAOS_WEBHOOK_SECRET``, ``CHAOS_STREAM``, ``CHAOS_DURABLE`` (the values of
  the placeholders of the same name), ``CHAOS_STATE_DIR`` (the host folder holding
  ``failpoints.json``, to mount where the services read their failpoint file, and ``points/``,
  the control folder of the fault points) and ``CHAOS_BOOT_DIR`` (chaos-model's bootstrap: mount
  it, put it first on a Python service's ``PYTHONPATH`` and set ``CHAOS_MODEL_POINTS`` to where
  ``points/`` is mounted and ``CHAOS_MODEL_SERVICE`` to the service's name, and every I/O call
  of that service is a fault point).

In the adapter's ``ready`` and ``busy`` checks, ``{port}`` and ``{ports[NAME]}`` are those host
ports. Keys (``file`` alone is required)::

    [compose]
    file = "compose.test.yml"       # relative to the adapter file's folder
    images_env = "docker/images.env"  # compose variables naming the images ($CHAOS_IMAGES_ENV)
    images = ["CHAOS_APP_IMAGE"]    # variables (of images_env) that must name a built image
    build = "scripts/build-images"  # how to build them, named in errors
    source = ["pyproject.toml", "app"]  # what an image labelled com.chaos-model.source carries
    network = "backend"             # the compose network a partition disconnects a service from
    webhook_secret = "..."          # the secret under compose (default: [webhook] secret)

    [compose.services.nginx]        # a service only the compose file runs
    fronts = "api"                  # links to the api enter through it
    ports = ["admin"]               # extra ports, as for [services]
    ready = "http://127.0.0.1:{port}/health"
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chaos_model.adapter._load import _Table
    from chaos_model.adapter._ready_section import ReadyCheck
    from chaos_model.adapter._spec import TargetSpec

#: compose variables every compose file may read, and the placeholder each one carries
VARIABLES = {
    "CHAOS_BUGS": "bugs",
    "CHAOS_WEBHOOK_SECRET": "webhook_secret",
    "CHAOS_STREAM": "stream",
    "CHAOS_DURABLE": "durable",
    "CHAOS_STATE_DIR": "the host folder of failpoints.json and of the points/ control folder",
    "CHAOS_BOOT_DIR": "the host folder of chaos-model's bootstrap (fault points at I/O calls)",
}
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED = ("postgres", "nats", "llm", "proxy", "telegram", "dashboard")


def port_variable(service: str, extra: str = "") -> str:
    """``CHAOS_API_PORT`` for ``{port}`` of api, ``CHAOS_WORKER_STATUS_PORT`` for
    ``{ports[status]}`` of worker."""
    return "_".join(("CHAOS", _upper(service), *((_upper(extra),) if extra else ()), "PORT"))


def link_variable(link: str) -> str:
    """``CHAOS_API_POSTGRES_LINK`` for the link ``api->postgres``."""
    client, _, server = link.partition("->")
    return f"CHAOS_{_upper(client)}_{_upper(server)}_LINK"


def _upper(name: str) -> str:
    return name.upper().replace("-", "_")


@dataclass(frozen=True)
class ComposeServiceSpec:
    """A service only the compose file runs (a reverse proxy in front of the API, say)."""

    name: str
    #: the adapter service whose links enter through this one (its host port replaces theirs)
    fronts: str = ""
    #: names of extra ports, given as ``CHAOS_<NAME>_<PORT>_PORT`` and ``{ports[PORT]}``
    ports: tuple[str, ...] = ()
    ready: ReadyCheck | None = None


@dataclass(frozen=True)
class ComposeSpec:
    #: the compose file, relative to the adapter file's folder
    file: str
    #: a file of ``NAME=value`` compose variables naming the images (relative to that folder)
    images_env: str = ""
    #: variables that must name an image present in the engine (nothing is pulled or built)
    images: tuple[str, ...] = ()
    #: the command that builds the images, named in errors
    build: str = ""
    #: files and folders (relative) an image labelled ``com.chaos-model.source`` is built from
    source: tuple[str, ...] = ()
    #: the compose network a partition disconnects a service from
    network: str = "default"
    #: the webhook secret the compose file's services use; empty: the [webhook] secret
    webhook_secret: str = ""
    services: Mapping[str, ComposeServiceSpec] = field(default_factory=dict)

    def check(self, target: TargetSpec) -> None:
        """Reject what only makes sense against the rest of the adapter (a compose-only
        service named like one of [services], one that fronts an unknown service, a file that
        is not there)."""
        from chaos_model.errors import AdapterError

        def fail(key: str, problem: str) -> None:
            raise AdapterError(f"{target.source}: compose.services.{key}: {problem}")

        if target.telegram_users:
            raise AdapterError(
                f"{target.source}: services.{target.telegram_users[0]}.uses: telegram: the Bot"
                " API fake runs on the local stack only (--backend local)"
            )
        for key, path in [("file", self.file), *(("source", path) for path in self.source)]:
            if not (target.root / path).exists() or (key == "file" and path == ""):
                raise AdapterError(
                    f"{target.source}: compose.{key}: {target.root / path} does not exist"
                )
        self.port_variables(target)

        fronted: dict[str, str] = {}
        for name, spec in self.services.items():
            if name in target.services:
                fail(
                    name,
                    f"{name!r} is in [services] already; list here only what compose alone runs",
                )
            if not spec.fronts:
                continue
            if spec.fronts not in target.services:
                fail(
                    f"{name}.fronts",
                    f"no service {spec.fronts!r} in [services]"
                    f" (have: {', '.join(target.services)})",
                )
            if spec.fronts in fronted:
                fail(f"{name}.fronts", f"{fronted[spec.fronts]} fronts {spec.fronts!r} already")
            fronted[spec.fronts] = name

    def port_variables(self, target: TargetSpec) -> dict[str, str]:
        """Each port a compose stack hands out (infrastructure, services, links) -> the compose
        variable carrying it; two that would share a variable are refused."""
        from chaos_model.errors import AdapterError

        extras = {name: spec.ports for name, spec in target.services.items()}
        extras.update({name: spec.ports for name, spec in self.services.items()})
        variables = {
            "postgres": port_variable("postgres"),
            "nats": port_variable("nats"),
            "nats_monitor": port_variable("nats", "monitor"),
            "llm": port_variable("llm"),
        }
        for name, ports in extras.items():
            variables[name] = port_variable(name)
            variables.update({f"{name}.{extra}": port_variable(name, extra) for extra in ports})
        variables.update({link: link_variable(link) for link in target.links()})
        seen: dict[str, str] = {}
        for key, variable in variables.items():
            if variable in seen:
                raise AdapterError(
                    f"{target.source}: the ports {seen[variable]} and {key} would both be"
                    f" given to compose as {variable}: rename a service or a port"
                )
            seen[variable] = key
        return variables


def parse_compose(table: _Table) -> ComposeSpec:
    from chaos_model.adapter._ready_section import parse_ready

    file = table.text("file")
    if not file.strip():
        table.fail("file", "must name the compose file")
    images = table.words("images")
    for variable in images:
        if not _VARIABLE_NAME.fullmatch(variable):
            table.fail("images", f"{variable!r} is not a variable name (letters, digits, '_')")
    source = table.words("source")
    for path in source:
        if PurePosixPath(path).is_absolute() or ".." in PurePosixPath(path).parts:
            table.fail("source", f"{path!r} must be relative to the adapter file's folder")
    network = table.text("network", ComposeSpec.network)
    if not network:
        table.fail("network", "must name a network of the compose file")
    services: dict[str, ComposeServiceSpec] = {}
    services_table = table.table("services")
    if services_table is not None:
        for name in services_table.data:
            if name in _RESERVED:
                services_table.fail(name, f"'{name}' is a service chaos-model provides")
            if not name.replace("_", "").replace("-", "").isalnum():
                services_table.fail(name, "a service name is letters, digits, '-' and '_'")
            entry = services_table.table(name)
            assert entry is not None
            for port in entry.words("ports"):
                if not port.replace("_", "").replace("-", "").isalnum():
                    entry.fail("ports", f"{port!r}: a port name is letters, digits, '-' and '_'")
            services[name] = ComposeServiceSpec(
                name=name,
                fronts=entry.text("fronts", ""),
                ports=entry.words("ports"),
                ready=parse_ready(entry),
            )
            entry.done()
        services_table.done()
    spec = ComposeSpec(
        file=file,
        images_env=table.text("images_env", ""),
        images=images,
        build=table.text("build", ""),
        source=source,
        network=network,
        webhook_secret=table.text("webhook_secret", ""),
        services=services,
    )
    table.done()
    return spec
