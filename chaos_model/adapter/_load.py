"""Read an adapter file (TOML, or YAML when PyYAML is installed) into a :class:`TargetSpec`.

Every problem is reported as an :class:`~chaos_model.errors.AdapterError` naming the file, the
key and what is wrong with it; unknown keys are errors too, so a typo never passes silently.
"""

from __future__ import annotations

import os
import string
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from chaos_model.adapter._compose_section import parse_compose
from chaos_model.adapter._llm_section import LLMSpec, parse_llm
from chaos_model.adapter._oracle_section import (
    MODEL_STAGES,
    StageGraph,
    parse_oracle,
    parse_stage_graph,
)
from chaos_model.adapter._ready_section import HttpCheck, parse_ready, ready_template
from chaos_model.adapter._spec import (
    INFRASTRUCTURE,
    SERVICE_FAULTS,
    AttachSpec,
    DashboardSpec,
    Limits,
    ObserveSpec,
    PointsSpec,
    QueueSpec,
    ServiceSpec,
    TargetSpec,
    WebhookSpec,
)
from chaos_model.errors import AdapterError

T = TypeVar("T")
#: placeholders a command, an environment value or a URL may use
PLACEHOLDERS = frozenset(
    {
        "python",
        "root",
        "dir",
        "port",
        "ports",
        "database_url",
        "database_url_asyncpg",
        "database_url_psycopg",
        "database_dsn",
        "nats_url",
        "llm_url",
        "bot_api_url",
        "webhook_secret",
        "failpoints_file",
        "bugs",
        "stream",
        "durable",
        "pid",
    }
)
INVARIANT_NAMES = frozenset(
    {
        "one_message_per_update",
        "one_score_and_extraction_per_message",
        "no_knowledge_without_score",
        "nothing_stored_for_rejected",
        "stages_never_go_backwards",
        "attempts_within_bound",
        "quiesces_after_heal",
        "accepted_updates_complete",
        "unfinished_deliveries_retrying",
        "feeds_saw_every_stage",
        "recovers_by_itself",
        "stage_rules_hold",
        "content_as_sent_and_answered",
        "llm_cost_within_bounds",
        "webhook_answers_in_time",
        "outcome_as_predicted",
    }
)


class _Table:
    """One table of the file, read key by key; what is never read is an unknown key."""

    def __init__(self, source: Path, where: str, data: Any) -> None:
        self.source = source
        self.where = where
        if not isinstance(data, Mapping):
            self.fail("", f"expected a table, got {_kind(data)}")
        self.data: Mapping[str, Any] = data
        self._read: set[str] = set()

    def fail(self, key: str, problem: str) -> None:
        name = f"{self.where}.{key}" if self.where and key else (self.where or key)
        raise AdapterError(f"{self.source}: {name or '(top level)'}: {problem}")

    def has(self, key: str) -> bool:
        return key in self.data

    def _get(self, key: str, kind: type[T] | tuple[type, ...], required: bool) -> Any:
        self._read.add(key)
        if key not in self.data:
            if required:
                self.fail(key, "missing (required)")
            return None
        value = self.data[key]
        if isinstance(value, bool) and kind in (int, float, (int, float)):
            self.fail(key, f"expected a number, got {value!r}")
        if not isinstance(value, kind):
            expected = getattr(kind, "__name__", "number")
            self.fail(key, f"expected {_article(expected)}, got {_kind(value)} {value!r}"[:200])
        return value

    def text(self, key: str, default: str | None = None) -> str:
        value = self._get(key, str, default is None)
        return default if value is None else value  # type: ignore[return-value]

    def number(self, key: str, default: float, *, positive: bool = True) -> float:
        value = self._get(key, (int, float), False)
        if value is None:
            return default
        if value < 0 or (positive and value == 0 and default > 0):
            self.fail(key, f"must be positive, got {value}")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key, bool, False)
        return default if value is None else bool(value)

    def words(
        self, key: str, default: tuple[str, ...] = (), known: Iterable[str] = ()
    ) -> tuple[str, ...]:
        value = self._get(key, list, False)
        if value is None:
            return default
        for item in value:
            if not isinstance(item, str) or not item:
                self.fail(key, f"expected a list of non-empty strings, found {item!r}")
        allowed = set(known)
        unknown = [item for item in value if allowed and item not in allowed]
        if unknown:
            self.fail(
                key, f"unknown value(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}"
            )
        return tuple(value)

    def command(self, key: str) -> tuple[str, ...] | None:
        value = self._get(key, (list, str), False)
        if value is None:
            return None
        if isinstance(value, str):
            self.fail(key, 'expected a list of arguments, e.g. ["{python}", "-m", "app"]')
        if not value or not all(isinstance(arg, str) for arg in value):
            self.fail(key, "expected a non-empty list of strings")
        for arg in value:
            self.check_template(key, arg)
        return tuple(value)

    def strings(self, key: str, *, templates: bool = True) -> dict[str, str]:
        value = self._get(key, dict, False)
        if value is None:
            return {}
        out: dict[str, str] = {}
        for name, item in value.items():
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                self.fail(f"{key}.{name}", f"expected a string, got {_kind(item)}")
            if templates:
                self.check_template(f"{key}.{name}", str(item))
            out[name] = str(item)
        return out

    def table(self, key: str, *, required: bool = False) -> _Table | None:
        value = self._get(key, dict, required)
        if value is None:
            return None
        return _Table(self.source, f"{self.where}.{key}" if self.where else key, value)

    def check_template(self, key: str, text: str) -> None:
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
        except ValueError as error:
            self.fail(key, f"bad placeholder in {text!r}: {error} (write {{{{ for a brace)")
        for name in fields:
            base = name.split("[", 1)[0].split(".", 1)[0]
            if base not in PLACEHOLDERS:
                self.fail(
                    key,
                    f"unknown placeholder {{{name}}} in {text!r}; known: "
                    + ", ".join(f"{{{p}}}" for p in sorted(PLACEHOLDERS)),
                )

    def done(self) -> None:
        unknown = sorted(set(self.data) - self._read)
        if unknown:
            known = ", ".join(sorted(self._read))
            self.fail(unknown[0], f"unknown key (known here: {known})")


def _kind(value: Any) -> str:
    return {dict: "a table", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _article(name: str) -> str:
    words = {"str": "a string", "dict": "a table", "list": "a list", "bool": "true or false"}
    return words.get(name, f"a {name}")


def load_adapter(path: str | Path) -> TargetSpec:
    """Read and check the adapter file at ``path``."""
    source = Path(path)
    try:
        raw = source.read_bytes()
    except OSError as error:
        raise AdapterError(f"{source}: cannot read the adapter file: {error.strerror}") from None
    if source.suffix in (".yaml", ".yml"):
        data = _parse_yaml(source, raw)
    else:
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise AdapterError(f"{source}: not valid TOML: {error}") from None
    return parse_adapter(data, source.resolve())


def _parse_yaml(source: Path, raw: bytes) -> Any:
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        raise AdapterError(
            f"{source}: reading YAML needs PyYAML (pip install pyyaml), or write the file as TOML"
        ) from None
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as error:
        raise AdapterError(f"{source}: not valid YAML: {error}") from None


def parse_adapter(data: Any, source: Path) -> TargetSpec:
    top = _Table(source, "", data)
    target = top.table("target", required=True)
    assert target is not None
    name = target.text("name")
    description = target.text("description", "")
    driver = target.text("driver", "")
    if driver and ":" not in driver:
        target.fail("driver", f"expected 'module:Class', got {driver!r}")
    python = _interpreter(target, source)
    target.done()

    services = _services(top)
    webhook = _webhook(top, services)
    dashboard = _dashboard(top, services)
    observe = _observe(top)
    stages = _stages(top)
    queue = _queue(top)
    env = top.strings("env")
    database = top.table("database")
    migrate: tuple[str, ...] | None = None
    reset_sql = postgres = ""
    extensions: tuple[str, ...] = ()
    if database is not None:
        migrate = database.command("migrate")
        reset_sql = database.text("reset", "")
        postgres = _postgres_build(database, source)
        extensions = database.words("extensions")
        database.done()
    failpoints = _names(top, "failpoints")
    bugs = _names(top, "bugs")
    limits = _limits(top)
    skip: tuple[str, ...] = ()
    invariants = top.table("invariants")
    if invariants is not None:
        skip = invariants.words("skip", known=INVARIANT_NAMES)
        invariants.done()
    attach = _attach(top, services)
    compose_table = top.table("compose")
    compose = parse_compose(compose_table) if compose_table is not None else None
    experiments = ""
    experiments_table = top.table("experiments")
    if experiments_table is not None:
        experiments = experiments_table.text("catalogue")
        if ":" not in experiments:
            experiments_table.fail("catalogue", f"expected 'module:NAME', got {experiments!r}")
        experiments_table.done()
    llm_table = top.table("llm")
    llm = parse_llm(llm_table) if llm_table is not None else LLMSpec()
    graph_table = top.table("stage_graph")
    stage_graph = parse_stage_graph(graph_table) if graph_table is not None else StageGraph()
    oracle_table = top.table("oracle")
    oracle = parse_oracle(oracle_table) if oracle_table is not None else None
    top.done()
    return TargetSpec(
        name=name,
        description=description,
        source=source,
        webhook=webhook,
        dashboard=dashboard,
        observe=observe,
        services=services,
        stages=stages,
        queue=queue,
        env=env,
        migrate=migrate,
        reset_sql=reset_sql,
        failpoints=failpoints,
        bugs=bugs,
        limits=limits,
        skip_invariants=skip,
        driver=driver,
        attach=attach,
        compose=compose,
        experiments=experiments,
        llm=llm,
        stage_graph=stage_graph,
        oracle=oracle,
        python=python,
        postgres_bin=postgres,
        extensions=extensions,
    )


def _path_in(table: _Table, key: str, source: Path) -> Path | None:
    """The path ``table[key]`` names, relative to the adapter file's folder or absolute."""
    given = table.text(key, "")
    if not given:
        return None
    path = Path(given).expanduser()
    return path if path.is_absolute() else source.parent / path


def _interpreter(target: _Table, source: Path) -> str:
    """``[target] python``: an interpreter, relative to the adapter file's folder or absolute."""
    path = _path_in(target, "python", source)
    if path is None:
        return ""
    if not path.is_file() or not os.access(path, os.X_OK):
        why = "is not an executable file" if path.exists() else "does not exist"
        target.fail("python", f"{path} {why} (relative paths start at {source.parent})")
    return str(path.absolute())


def _postgres_build(database: _Table, source: Path) -> str:
    """``[database] postgres``: the folder of a PostgreSQL build's ``postgres`` and ``initdb``."""
    folder = _path_in(database, "postgres", source)
    if folder is None:
        return ""
    missing = [name for name in ("postgres", "initdb") if not (folder / name).is_file()]
    if missing:
        database.fail(
            "postgres",
            f"{folder} has no {' or '.join(missing)} (name the bin folder of a PostgreSQL build;"
            f" relative paths start at {source.parent})",
        )
    return str(folder.absolute())


def _services(top: _Table) -> dict[str, ServiceSpec]:
    table = top.table("services", required=True)
    assert table is not None
    services: dict[str, ServiceSpec] = {}
    for name in table.data:
        if name in INFRASTRUCTURE or name in ("proxy", "telegram", "dashboard"):
            table.fail(name, f"'{name}' is a service chaos-model provides; name yours otherwise")
        if not name.replace("_", "").replace("-", "").isalnum():
            table.fail(name, "a service name is letters, digits, '-' and '_'")
        entry = table.table(name)
        assert entry is not None
        services[name] = _service(name, entry)
    if not services:
        table.fail("", "at least one service is needed (the one receiving the webhook)")
    table.done()
    return services


def _service(name: str, entry: _Table) -> ServiceSpec:
    spec = ServiceSpec(
        name=name,
        command=entry.command("command"),
        env=entry.strings("env"),
        uses=entry.words("uses", known=tuple(INFRASTRUCTURE)),
        ports=entry.words("ports"),
        ready=parse_ready(entry),
        busy=_busy(entry),
        faults=entry.words("faults", SERVICE_FAULTS, known=SERVICE_FAULTS),
        pid_file=entry.text("pid_file", ""),
        start=entry.command("start"),
        ready_timeout=entry.number("ready_timeout", 0.0) or None,
        points=_points(entry),
    )
    entry.done()
    _check_port_names(entry, spec)
    return spec


def _points(entry: _Table) -> PointsSpec:
    """``points = false``, or a table: ``enabled``, ``packages``, ``functions``, ``standby``."""
    if not entry.has("points"):
        return PointsSpec()
    if isinstance(entry.data["points"], bool):
        return PointsSpec(enabled=entry.flag("points", True))
    table = entry.table("points")
    assert table is not None
    enabled = table.flag("enabled", True) if table.has("enabled") else None
    functions = table.words("functions")
    for spec in functions:
        module, _, name = spec.partition(":")
        if not module or not name:
            table.fail("functions", f"expected 'module:Qualified.name', got {spec!r}")
    points = PointsSpec(
        enabled=enabled,
        packages=table.words("packages"),
        functions=functions,
        standby=table.flag("standby", True),
    )
    table.done()
    return points


def _check_port_names(entry: _Table, spec: ServiceSpec) -> None:
    """``{ports[NAME]}`` only for a port the service declares in ``ports``."""
    templates = [("command", arg) for arg in spec.command or ()]
    templates += [("start", arg) for arg in spec.start or ()]
    templates += [(f"env.{name}", value) for name, value in spec.env.items()]
    kind, template = ready_template(spec.ready)
    templates.append((f"ready.{kind}", template))
    if spec.busy is not None:
        templates.append(("busy.url", spec.busy.url))
    for key, text in templates:
        for _, field, _, _ in string.Formatter().parse(text):
            if field and field.startswith("ports[") and field.endswith("]"):
                name = field[len("ports[") : -1]
                if name not in spec.ports:
                    entry.fail(
                        key,
                        f"{{{field}}}: the service declares no port {name!r}"
                        f" (add it to ports = [...]; it has {list(spec.ports) or 'none'})",
                    )


def _busy(entry: _Table) -> HttpCheck | None:
    """``busy = { url, field }``: the JSON count of the service's tasks in progress."""
    if not entry.has("busy"):
        return None
    if isinstance(entry.data["busy"], str):
        entry.fail("busy", "expected a table with url and field (the JSON count of busy tasks)")
    check = entry.table("busy")
    assert check is not None
    url = check.text("url")
    check.check_template("url", url)
    field = check.text("field", "")
    if not field:
        check.fail("field", "missing (required): the JSON field with the number of busy tasks")
    check.done()
    return HttpCheck(url=url, field=field)


def _webhook(top: _Table, services: Mapping[str, ServiceSpec]) -> WebhookSpec:
    table = top.table("webhook", required=True)
    assert table is not None
    service = _service_name(table, "service", services)
    path = table.text("path")
    if not path.startswith("/"):
        table.fail("path", f"must start with '/', got {path!r}")
    spec = WebhookSpec(
        service=service,
        path=path,
        secret=table.text("secret"),
        secret_header=table.text("secret_header", WebhookSpec.secret_header),
        deadline=table.number("deadline", 0.0) or None,
        max_text=int(table.number("max_text", 0.0)),
    )
    table.done()
    return spec


def _dashboard(top: _Table, services: Mapping[str, ServiceSpec]) -> DashboardSpec | None:
    table = top.table("dashboard")
    if table is None:
        return None
    spec = DashboardSpec(
        service=_service_name(table, "service", services),
        read_path=table.text("read_path", ""),
        feed_path=table.text("feed_path", ""),
    )
    table.done()
    return spec


def _service_name(table: _Table, key: str, services: Mapping[str, ServiceSpec]) -> str:
    name = table.text(key)
    if name not in services:
        table.fail(key, f"no service {name!r} in [services] (have: {', '.join(services)})")
    return name


def _observe(top: _Table) -> ObserveSpec:
    table = top.table("observe", required=True)
    assert table is not None
    correlate = table.text("correlate", "update_id")
    if correlate not in ("update_id", "chat_message"):
        table.fail("correlate", f"expected 'update_id' or 'chat_message', got {correlate!r}")
    spec = ObserveSpec(
        messages=table.text("messages"),
        correlate=correlate,  # type: ignore[arg-type]
        knowledge=table.text("knowledge", ""),
        attempts=table.text("attempts", ""),
        inbox=table.text("inbox", ""),
        events=table.text("events", ""),
        texts=table.text("texts", ""),
        items=table.text("items", ""),
        pending=table.strings("pending", templates=False),
    )
    table.done()
    return spec


def _stages(top: _Table) -> dict[str, str]:
    table = top.table("stages")
    stages = {stage: stage for stage in MODEL_STAGES}
    if table is None:
        return stages
    for stage in MODEL_STAGES:
        stages[stage] = table.text(stage, stage)
    table.done()
    values = list(stages.values())
    doubled = sorted({v for v in values if values.count(v) > 1})
    if doubled:
        table.fail("", f"two model stages map to the same value {doubled[0]!r}")
    return stages


def _queue(top: _Table) -> QueueSpec:
    table = top.table("queue")
    if table is None:
        return QueueSpec(kind="core")
    kind = table.text("kind", "core")
    if kind not in ("jetstream", "core"):
        table.fail("kind", f"expected 'jetstream' or 'core', got {kind!r}")
    stream = table.text("stream", "")
    durable = table.text("durable", "")
    if kind == "jetstream" and not (stream and durable):
        table.fail("stream" if not stream else "durable", "missing (required for jetstream)")
    table.done()
    return QueueSpec(kind=kind, stream=stream, durable=durable)  # type: ignore[arg-type]


def _names(top: _Table, key: str) -> tuple[str, ...]:
    table = top.table(key)
    if table is None:
        return ()
    names = table.words("names")
    table.done()
    return names


def _limits(top: _Table) -> Limits:
    table = top.table("limits")
    if table is None:
        return Limits()
    default = Limits()
    max_attempts = table._get("max_attempts", int, False)
    if max_attempts is not None and max_attempts < 1:
        table.fail("max_attempts", f"must be at least 1, got {max_attempts}")
    limits = Limits(
        max_attempts=max_attempts or default.max_attempts,
        ready_timeout=table.number("ready_timeout", default.ready_timeout),
        quiescence_timeout=table.number("quiescence_timeout", default.quiescence_timeout),
        recovery_bound=table.number("recovery_bound", default.recovery_bound),
        stable_for=table.number("stable_for", default.stable_for),
        settle=table.number("settle", default.settle),
        give_up=table.number("give_up", default.give_up),
    )
    table.done()
    return limits


def _attach(top: _Table, services: Mapping[str, ServiceSpec]) -> AttachSpec | None:
    table = top.table("attach")
    if table is None:
        return None
    urls = table.strings("urls", templates=False)
    for name in urls:
        if name not in services:
            table.fail(f"urls.{name}", f"no service {name!r} in [services]")
    spec = AttachSpec(
        database_url=table.text("database_url"),
        nats_url=table.text("nats_url", ""),
        nats_monitor_url=table.text("nats_monitor_url", ""),
        llm_url=table.text("llm_url"),
        urls=urls,
        compose_project=table.text("compose_project", ""),
        failpoints_file=table.text("failpoints_file", ""),
        test_environment=table.flag("test_environment", False),
    )
    table.done()
    webhook_service = (top.data.get("webhook") or {}).get("service", "")
    if webhook_service and webhook_service not in urls:
        table.fail("urls", f"the webhook's service {webhook_service!r} needs a URL here")
    return spec
