"""What the model knows about a system under test, as plain data.

A :class:`TargetSpec` is read from an adapter file (see :mod:`chaos_model.adapter.load`) or
built in Python. Every URL, SQL query, stage name, service and failpoint of a target lives in
it; nothing in the rest of chaos-model names a particular system.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from chaos_model.adapter._compose_section import ComposeSpec
from chaos_model.adapter._llm_section import LLMSpec
from chaos_model.adapter._oracle_section import MODEL_STAGES, OracleSpec, StageGraph
from chaos_model.adapter._ready_section import HttpCheck, ReadyCheck
from chaos_model.errors import AdapterError

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
#: the services chaos-model itself provides in a local stack, and the faults each takes
INFRASTRUCTURE: dict[str, tuple[str, ...]] = {
    "postgres": ("pause", "kill", "stop"),
    "nats": ("pause", "kill", "stop"),
    "llm": (),
    # Telegram's Bot API, for the calls a service makes (the fake of chaos_model.bot_api)
    "telegram": (),
}
SERVICE_FAULTS = ("pause", "kill", "stop")
Correlation = Literal["update_id", "chat_message"]


@dataclass(frozen=True)
class PointsSpec:
    """Fault points at the service's I/O calls (``[services.NAME.points]``)."""

    #: None: on when the service's command runs Python
    enabled: bool | None = None
    #: the service's own top-level packages (default: whatever is not installed in site-packages)
    packages: tuple[str, ...] = ()
    #: more functions to make points of, ``module:Qualified.name``
    functions: tuple[str, ...] = ()
    #: keep a warm standby process, so that a crashed service is back in a fraction of a second
    standby: bool = True


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    #: how a local stack starts it; None when the service is only ever attached to
    command: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    #: infrastructure it connects to (postgres, nats, llm, telegram): one faultable link each
    uses: tuple[str, ...] = ()
    #: names of extra ports it listens on, as ``{ports[name]}``; ``{port}`` is always given
    ports: tuple[str, ...] = ()
    ready: ReadyCheck | None = None
    busy: HttpCheck | None = None
    faults: tuple[str, ...] = SERVICE_FAULTS
    #: attach mode: where its pid is, and how to start it again after a kill
    pid_file: str = ""
    start: tuple[str, ...] | None = None
    #: seconds it may take to become ready after a start or restart
    ready_timeout: float | None = None
    points: PointsSpec = field(default_factory=PointsSpec)


@dataclass(frozen=True)
class WebhookSpec:
    service: str
    path: str
    secret: str
    secret_header: str = SECRET_HEADER
    #: seconds within which every answer must arrive, whatever the fault (Telegram's tolerance);
    #: None: the Telegram simulator's read timeout
    deadline: float | None = None
    #: the longest message text the webhook accepts (the Bot API's own limit is 4096); when set,
    #: a longer one must be refused; 0: the target sets none, and no such update is sent
    max_text: int = 0


@dataclass(frozen=True)
class DashboardSpec:
    service: str
    read_path: str = ""
    #: a WebSocket of stage events (``event_id``, ``message_id``, ``stage``), resumable with
    #: ``?last_event_id=N``; empty when the target has none
    feed_path: str = ""


@dataclass(frozen=True)
class ObserveSpec:
    """One SQL query per observation, against the target's own database."""

    #: columns: id, then update_id (or chat_id, message_id), stage, score, failure_reason
    messages: str
    correlate: Correlation = "update_id"
    #: columns: message id, item (any value: a number or the item's text)
    knowledge: str = ""
    #: columns: stage, key, count (how often a stage ran for one subject)
    attempts: str = ""
    #: columns: update_id (the webhook's inbox of update ids it took)
    inbox: str = ""
    #: columns: event_id, message_id, stage (ordered by event_id)
    events: str = ""
    #: columns: message id, the text stored for it
    texts: str = ""
    #: columns: message id, the text of one stored knowledge item (one row per item)
    items: str = ""
    #: name -> SQL returning a count of work still to do (an outbox, a retry queue)
    pending: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueSpec:
    kind: Literal["jetstream", "core"] = "core"
    stream: str = ""
    durable: str = ""


@dataclass(frozen=True)
class Limits:
    #: the most attempts a stage may make for one message
    max_attempts: int = 10
    #: seconds a service may take to answer its readiness check after a start
    ready_timeout: float = 45.0
    #: seconds the system may take to go idle after every fault is healed
    quiescence_timeout: float = 60.0
    #: seconds a fresh update may take end to end after heal
    recovery_bound: float = 15.0
    #: quiescence without a durable queue: the database must not change for this long
    stable_for: float = 0.0
    #: seconds an armed failpoint is given to fire before the final heal
    settle: float = 3.0
    #: seconds the target needs to give up on a permanently failing LLM
    give_up: float = 30.0


@dataclass(frozen=True)
class AttachSpec:
    """A running system to attach to instead of starting one."""

    database_url: str = ""
    nats_url: str = ""
    nats_monitor_url: str = ""
    llm_url: str = ""
    #: base URL of each service that serves HTTP, by service name
    urls: Mapping[str, str] = field(default_factory=dict)
    compose_project: str = ""
    #: the failpoint file the target's processes read, if they have failpoints
    failpoints_file: str = ""
    #: the owner says this is a test environment that chaos may touch
    test_environment: bool = False


@dataclass(frozen=True)
class TargetSpec:
    name: str
    webhook: WebhookSpec
    observe: ObserveSpec
    services: Mapping[str, ServiceSpec]
    source: Path = Path("<python>")
    description: str = ""
    dashboard: DashboardSpec | None = None
    stages: Mapping[str, str] = field(default_factory=lambda: {s: s for s in MODEL_STAGES})
    queue: QueueSpec = field(default_factory=QueueSpec)
    #: environment given to every service and to the migration
    env: Mapping[str, str] = field(default_factory=dict)
    migrate: tuple[str, ...] | None = None
    reset_sql: str = ""
    failpoints: tuple[str, ...] = ()
    bugs: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    skip_invariants: tuple[str, ...] = ()
    #: "module:Class" of a Python driver to use instead of the SQL/HTTP one
    driver: str = ""
    attach: AttachSpec | None = None
    #: how the compose backend runs it; None when it has no compose file
    compose: ComposeSpec | None = None
    #: "module:NAME" of the target's named chaos experiments (a sequence of Experiment)
    experiments: str = ""
    #: how the LLM stub answers this target and keys its records
    llm: LLMSpec = field(default_factory=LLMSpec)
    #: the order of the target's stages (in the model's names)
    stage_graph: StageGraph = field(default_factory=StageGraph)
    #: how the reference model reads the target's LLM calls; None: those invariants do not apply
    oracle: OracleSpec | None = None
    #: the interpreter ``{python}`` stands for (absolute); '' for the one running chaos-model
    python: str = ""
    #: the bin folder of the PostgreSQL build to run (absolute); '' to search the usual places
    postgres_bin: str = ""
    #: PostgreSQL extensions the target needs (``vector``): the build chosen must have them
    extensions: tuple[str, ...] = ()

    @property
    def interpreter(self) -> str:
        """What ``{python}`` stands for: the target's own interpreter, else chaos-model's."""
        return self.python or sys.executable

    @property
    def root(self) -> Path:
        """The folder commands run in: the adapter file's own."""
        return (
            self.source.parent if self.source.name.endswith((".toml", ".yaml", ".yml")) else Path()
        )

    @property
    def has_feed(self) -> bool:
        return self.dashboard is not None and bool(self.dashboard.feed_path)

    @property
    def has_dashboard_read(self) -> bool:
        return self.dashboard is not None and bool(self.dashboard.read_path)

    def links(self) -> dict[str, str]:
        """Every faultable link, ``client->server`` -> server."""
        links = {f"{name}->{used}": used for name, s in self.services.items() for used in s.uses}
        links[f"telegram->{self.webhook.service}"] = self.webhook.service
        if self.dashboard is not None:
            links[f"dashboard->{self.dashboard.service}"] = self.dashboard.service
        return links

    @property
    def telegram_users(self) -> tuple[str, ...]:
        """The services that call Telegram's Bot API (``uses = ["telegram"]``)."""
        return tuple(name for name, spec in self.services.items() if "telegram" in spec.uses)

    def services_with(self, fault: str) -> tuple[str, ...]:
        """Services (infrastructure first) on which ``fault`` may be applied."""
        infra = tuple(name for name, faults in INFRASTRUCTURE.items() if fault in faults)
        return infra + tuple(n for n, s in self.services.items() if fault in s.faults)

    def to_model_stage(self, value: str) -> str:
        """The model's stage name for the target's stage ``value``; a value ``[stages]`` does
        not map is an adapter mistake (an invariant could not judge the row)."""
        stage = _reverse(self.stages).get(value)
        if stage is None:
            raise AdapterError(
                f"{self.source}: stages: the target stored the stage {value!r}, which [stages]"
                f" does not map (it maps {', '.join(map(repr, self.stages.values()))})"
            )
        return stage


def _reverse(stages: Mapping[str, str]) -> dict[str, str]:
    return {target: model for model, target in stages.items()}
