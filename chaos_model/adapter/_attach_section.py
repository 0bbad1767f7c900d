"""The ``[attach]`` section of an adapter, checked against the rest of it: what attaching to a
running system needs (its URLs), and a way to start again every service a fault may stop."""

from __future__ import annotations

import string
from collections.abc import Collection
from pathlib import Path
from urllib.parse import urlsplit

from chaos_model.adapter._render import Placeholders
from chaos_model.adapter._spec import TargetSpec
from chaos_model.errors import AdapterError

#: faults after which a service of an attached system must be started again
STOPPING_FAULTS = ("kill", "stop")


def check_attach(target: TargetSpec) -> None:
    """Raise :class:`AdapterError` naming the key when ``[attach]`` lacks what attaching needs."""
    attach = target.attach
    if attach is None:
        raise AdapterError(
            f"{target.source}: [attach]: missing: attaching needs the running system's URLs"
        )
    required = {"database_url": attach.database_url, "llm_url": attach.llm_url}
    if target.queue.kind == "jetstream":
        required["nats_url"] = attach.nats_url
    for key, value in required.items():
        if not value:
            why = " (the queue is jetstream)" if key == "nats_url" else ""
            raise AdapterError(f"{target.source}: attach.{key}: missing (required){why}")
    if target.telegram_users:
        raise AdapterError(
            f"{target.source}: services.{target.telegram_users[0]}.uses: telegram: attached,"
            " chaos-model starts no Bot API fake; run `python -m chaos_model.bot_api --port N`,"
            " point the service at it and leave telegram out of uses"
        )
    needed = {target.webhook.service: "the webhook's service"}
    if target.dashboard is not None:
        needed.setdefault(target.dashboard.service, "the dashboard's service")
    for name, what in needed.items():
        if not attach.urls.get(name):
            raise AdapterError(
                f"{target.source}: attach.urls.{name}: missing: {what} {name!r} needs a URL"
            )
    for name, url in attach.urls.items():
        split = urlsplit(url)
        if split.scheme not in ("http", "https") or not split.hostname:
            raise AdapterError(
                f"{target.source}: attach.urls.{name}: expected an http(s) URL, got {url!r}"
            )


def check_restartable(target: TargetSpec, containers: Collection[str] = ()) -> None:
    """A service found by pid file that chaos-model may kill or stop needs a ``start`` command
    (a container is started again through Docker)."""
    for name, spec in target.services.items():
        if name in containers or not spec.pid_file or spec.start is not None:
            continue
        stopping = [fault for fault in spec.faults if fault in STOPPING_FAULTS]
        if stopping:
            raise AdapterError(
                f"{target.source}: services.{name}.start: needed to restart after a kill (its"
                f" faults include {' and '.join(stopping)}); give the command that starts it,"
                f" or leave {' and '.join(stopping)} out of services.{name}.faults"
            )


def attached_path(target: TargetSpec, value: str) -> Path:
    """A path of the ``[attach]`` section, relative to the adapter file's folder."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else target.root.resolve() / path


def render_attached(
    target: TargetSpec, folder: Path, name: str | None, key: str, template: str
) -> str:
    """``template`` of service ``name`` with the attached system's values (``{dir}`` is
    ``folder``); a placeholder that needs a stack chaos-model starts is an AdapterError naming
    ``key``."""
    attach = target.attach
    assert attach is not None
    fields = {
        field.split("[", 1)[0].split(".", 1)[0]
        for _, field, _, _ in string.Formatter().parse(template)
        if field is not None
    }
    url = attach.urls.get(name or "", "")
    if "ports" in fields:
        raise AdapterError(
            f"{target.source}: {key}: {{ports[...]}} in {template!r} is a port chaos-model picks"
            f" when it starts the service; attached, write the port itself, or give [attach]"
            f" urls.{name} and use {{port}}"
        )
    if "port" in fields and not url:
        raise AdapterError(
            f"{target.source}: {key}: {{port}} in {template!r} needs [attach] urls.{name}"
        )
    failpoints = attach.failpoints_file
    values = Placeholders(
        root=target.root.resolve(),
        dir=folder,
        database_url=attach.database_url,
        nats_url=attach.nats_url,
        llm_url=attach.llm_url,
        webhook_secret=target.webhook.secret,
        failpoints_file=str(attached_path(target, failpoints)) if failpoints else "",
        bugs="",
        stream=target.queue.stream,
        durable=target.queue.durable,
        port=_port(url) if url else "",
        python=target.interpreter,
    )
    try:
        return values.render(template)
    except AdapterError as error:
        raise AdapterError(f"{target.source}: {key}: {error}") from None


def _port(url: str) -> int | str:
    split = urlsplit(url)
    try:
        port = split.port
    except ValueError:
        return ""
    if port is not None:
        return port
    return {"http": 80, "https": 443}.get(split.scheme, "")
