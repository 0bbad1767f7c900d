"""Fault points at every I/O call of a Python service, armed from outside the process.

chaos-model starts each Python service of a target with this folder first on ``PYTHONPATH``: its
``sitecustomize`` calls :func:`install`, which wraps the I/O entry points of the libraries such
services use (asyncpg, SQLAlchemy's async session, nats-py, httpx, aiohttp, redis-py's asyncio
client) as they are imported. The service's code is not changed.

Every wrapped call is an *event*: the service, the library operation (``asyncpg.execute``), a
detail (``INSERT INTO outbox``, a subject, ``POST /v1/chat/completions``) and the call site, the
innermost frame of the service's own code with the function it was reached from and the entry
point it runs under (``score_message_task > work > enqueue``). Together they make the point's
key. Each process appends its events to a log in the control folder; chaos-model reads them for
coverage.

A point is *armed* by writing ``armed.json`` in the control folder (replaced atomically, so a
``stat`` per call tells whether anything changed): at the Nth matching call after arming, before
or after the call, the process crashes (SIGKILL: nothing is flushed), hangs until the arm is
removed, or raises the library's own exception (``ConnectionDoesNotExistError``, nats'
``TimeoutError``, ``httpx.ReadTimeout``...). Counting and firing go through ``counts.json``
under a file lock, so a point fires once whatever process reaches it.

Standard library only: this runs inside the target's interpreter, whatever its environment.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import functools
import importlib
import importlib.abc
import inspect
import json
import os
import re
import signal
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

ENV_DIR = "CHAOS_MODEL_POINTS"
ENV_SERVICE = "CHAOS_MODEL_SERVICE"
#: top-level packages that are the service's own code (default: whatever is not installed)
ENV_APP = "CHAOS_MODEL_APP_PACKAGES"
#: extra functions to make points of: ``module:Qualified.name`` separated by commas
ENV_EXTRA = "CHAOS_MODEL_POINT_FUNCTIONS"
#: libraries not to instrument, separated by commas (``httpx,redis``)
ENV_SKIP = "CHAOS_MODEL_POINTS_SKIP"

HANG_POLL_SECONDS = 0.05
CHAIN_DEPTH = 80
MODULES_AFTER_SECONDS = 2.0
APP, LIB, SKIP = "app", "lib", "skip"

_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("chaos_points_inside", default=False)


# ----------------------------------------------------------------------------- details
_NUMBER = re.compile(r"\b\d+\b|[0-9a-f]{8}-[0-9a-f-]{27,}")
#: a Telegram bot token in a Bot API path (``/bot123:AAE.../sendMessage``): a secret, and the
#: same call under another token is the same point
_BOT_TOKEN = re.compile(r"/bot\d+:[\w-]+")


def _normal(text: str) -> str:
    return _NUMBER.sub("{n}", _BOT_TOKEN.sub("/bot{token}", text))


#: the table a SELECT reads (``FROM x``, not ``FROM min(...)`` inside an expression), or the
#: function it calls when it reads none (``SELECT pg_notify(...)``)
_FROM = re.compile(r"\bFROM\s+([\w.\"]+)\b(?!\s*\()", re.IGNORECASE)
_CALLED = re.compile(r"^\s*SELECT\s+([\w.]+)\s*\(", re.IGNORECASE)


def sql_detail(query: Any) -> str:
    """``INSERT INTO outbox``, ``UPDATE messages``, ``SELECT telegram_updates``, ``COMMIT``."""
    words = str(query).replace("(", " (").split()
    if not words:
        return ""
    verb = words[0].upper().rstrip(";")
    table = ""
    if verb == "INSERT" and len(words) > 2:
        table = words[2]
    elif verb == "UPDATE" and len(words) > 1:
        table = words[1]
    elif verb == "DELETE" and len(words) > 2:
        table = words[2]
    elif verb in ("SELECT", "WITH"):
        found = _FROM.search(str(query)) or _CALLED.search(str(query))
        table = found.group(1) if found else ""
        verb = "SELECT"
    table = table.strip('";').split("(")[0]
    prefix = {"INSERT": "INSERT INTO", "DELETE": "DELETE FROM"}.get(verb, verb)
    return f"{prefix} {table}".strip()


#: statements the driver runs on its own (a transaction's start and end, a savepoint, a pooled
#: connection's reset): not points; a transaction's COMMIT is one
_DRIVER_SQL = re.compile(
    r"\s*(BEGIN|ROLLBACK|SAVEPOINT|RELEASE\s+SAVEPOINT|SELECT\s+pg_advisory_unlock_all"
    r"|RESET\s+ALL|CLOSE\s+ALL|UNLISTEN)\b",
    re.IGNORECASE,
)


def _is_driver_sql(query: Any) -> bool:
    return _DRIVER_SQL.match(str(query)) is not None


# ----------------------------------------------------------------------------- the runtime
def _module_of(frame: Any) -> str:
    """The frame's module; for ``python -m package.module``, that name, not ``__main__``."""
    module = str(frame.f_globals.get("__name__", ""))
    if module == "__main__":
        spec = frame.f_globals.get("__spec__")
        module = getattr(spec, "name", None) or module
    return module


class Runtime:
    """One process's view of the control folder: its events, the armed points, their firing."""

    def __init__(self, folder: str, service: str) -> None:
        self.folder = folder
        self.service = service
        self.pid = os.getpid()
        self.started = time.monotonic()
        events = os.path.join(folder, "events")
        os.makedirs(events, exist_ok=True)
        stem = os.path.join(events, f"{service}.{self.pid}")
        self._log = os.open(f"{stem}.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._sites = os.open(f"{stem}.sites", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._site_ids: dict[str, int] = {}
        self._kinds: dict[str, str] = {}
        self._signature: tuple[int, int, int] | None = None
        self.generation = 0
        self.armed: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._modules_written = 0
        app = os.environ.get(ENV_APP, "")
        self._app_packages = {name.strip() for name in app.split(",") if name.strip()}
        paths = sysconfig.get_paths()
        self._lib_roots = tuple(
            os.path.realpath(paths[key]) + os.sep
            for key in ("stdlib", "platstdlib", "purelib", "platlib")
            if key in paths
        )
        self._own = os.path.dirname(os.path.realpath(__file__)) + os.sep

    # -------------------------------------------------------------- control file
    def refresh(self) -> None:
        path = os.path.join(self.folder, "armed.json")
        try:
            status = os.stat(path)
        except FileNotFoundError:
            self.armed = []
            return
        signature = (status.st_ino, status.st_mtime_ns, status.st_size)
        if signature == self._signature:
            return
        try:
            with open(path) as handle:
                state = json.load(handle)
        except (OSError, ValueError):
            return  # being replaced: read it at the next call
        self._signature = signature
        self.generation = int(state.get("generation", 0))
        self.armed = [arm for arm in state.get("armed", []) if arm.get("service") == self.service]

    # -------------------------------------------------------------- call sites
    def _kind(self, filename: str) -> str:
        kind = self._kinds.get(filename)
        if kind is None:
            kind = self._classify(filename)
            self._kinds[filename] = kind
        return kind

    def _classify(self, filename: str) -> str:
        if filename.startswith("<"):
            return SKIP
        real = os.path.realpath(filename)
        if real.startswith(self._own):
            return SKIP
        if "site-packages" in real or "dist-packages" in real:
            return LIB
        if real.startswith(self._lib_roots):
            return SKIP
        return APP

    def _is_app(self, frame: Any) -> bool:
        if self._app_packages:
            return _module_of(frame).partition(".")[0] in self._app_packages
        return self._kind(frame.f_code.co_filename) == APP

    def site(self, library: str) -> tuple[str, str, str, int, str]:
        """(chain, module, function, line, file) of the call being made.

        The call site is the innermost frame of the service's own code; the chain names the
        function a library or the event loop called into that code (a task, an endpoint, a
        loop: where this run of the service's code began), the function that made the call and
        the one between them, if any."""
        frame: Any = sys._getframe(3)
        run: list[Any] = []
        fallback = None
        depth = 0
        while frame is not None and depth < CHAIN_DEPTH:
            if self._is_app(frame):
                run.append(frame)
            elif run:
                break  # the first frame outside the service's code: the run began below it
            elif fallback is None and self._kind(frame.f_code.co_filename) == LIB:
                module = str(frame.f_globals.get("__name__", ""))
                if module.partition(".")[0] != library:
                    fallback = frame
            frame = frame.f_back
            depth += 1
        if not run:
            if fallback is None:
                return "", "", "", 0, ""
            run = [fallback]
        inner = run[0]
        names = [run[-1].f_code.co_name]
        if len(run) > 2:
            names.append(run[1].f_code.co_name)
        if len(run) > 1:
            names.append(inner.f_code.co_name)
        module = _module_of(inner)
        code = inner.f_code
        return " > ".join(names), module, code.co_name, inner.f_lineno, code.co_filename

    # -------------------------------------------------------------- events
    def event(self, library: str, op: str, detail: str, in_transaction: bool = False) -> str:
        """Record one call (with the monotonic clock, which every process shares); return its
        point's key. ``in_transaction``: the call is inside a database transaction, so nothing
        it does outlives a crash unless the transaction commits."""
        self.refresh()
        chain, module, function, line, filename = self.site(library)
        key = f"{chain}: {op} {detail}".strip() if chain else f"{op} {detail}".strip()
        with self._lock:
            site_id = self._site_ids.get(key)
            if site_id is None:
                site_id = self._site_ids[key] = len(self._site_ids)
                record = {
                    "id": site_id,
                    "key": key,
                    "service": self.service,
                    "op": op,
                    "detail": detail,
                    "chain": chain,
                    "module": module,
                    "function": function,
                    "line": line,
                    "file": filename,
                    "in_transaction": in_transaction,
                }
                os.write(self._sites, (json.dumps(record) + "\n").encode())
            os.write(self._log, f"{self.generation} {site_id} {time.monotonic():.4f}\n".encode())
        if self._modules_written < 2:
            with contextlib.suppress(OSError):  # no standby then: the service goes on
                self._note_modules()
        return key

    def _note_modules(self) -> None:
        """Write the modules this service imports, for a warm standby to import ahead of its
        start: at its first I/O call, and again once it has run a while (some import late)."""
        settled = time.monotonic() - self.started > MODULES_AFTER_SECONDS
        if self._modules_written == 1 and not settled:
            return
        self._modules_written = 2 if settled else 1
        names = sorted(
            name
            for name, module in list(sys.modules.items())
            if module is not None and not name.startswith("_") and name != "__main__"
        )
        path = os.path.join(self.folder, "modules", f"{self.service}.txt")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fresh = f"{path}.{self.pid}"
        with open(fresh, "w") as handle:
            handle.write("\n".join(names))
        os.replace(fresh, path)

    # -------------------------------------------------------------- arms
    def matching(self, key: str, op: str, full: str) -> list[dict[str, Any]]:
        found = []
        for arm in self.armed:
            if arm.get("point") not in (None, "", key):
                continue
            if arm.get("op") and arm["op"] != op:
                continue
            pattern = arm.get("match")
            if pattern and not re.search(pattern, full):
                continue
            found.append(arm)
        return found

    def take(self, arm: dict[str, Any], when: str) -> bool:
        """Count one matching call of ``arm`` (``when`` before or after it); True when this one
        is the occurrence it fires at. Shared by every process through ``counts.json``."""
        if arm.get("when", "before") != when:
            return False
        lock_path = os.path.join(self.folder, "points.lock")
        with open(lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            path = os.path.join(self.folder, "counts.json")
            try:
                with open(path) as handle:
                    counts = json.load(handle)
            except (OSError, ValueError):
                counts = {}
            entry = counts.setdefault(str(arm["id"]), {"seen": 0, "fired": False})
            if entry["fired"]:
                return False
            entry["seen"] += 1
            fire = bool(entry["seen"] >= int(arm.get("occurrence", 1)))
            if fire:
                entry.update(fired=True, pid=self.pid, at=time.time())
            fresh = f"{path}.{self.pid}"
            with open(fresh, "w") as handle:
                json.dump(counts, handle)
            os.replace(fresh, path)
        return fire

    def still_armed(self, arm_id: Any) -> bool:
        self.refresh()
        return any(arm.get("id") == arm_id for arm in self.armed)

    def announce(self, arm: dict[str, Any], key: str) -> None:
        line = f"chaos-model: point fault {arm.get('action')} {arm.get('when')} {key!r}\n"
        with contextlib.suppress(Exception):
            sys.stderr.write(line)
            sys.stderr.flush()


_runtime: Runtime | None = None


# ----------------------------------------------------------------------------- wrapping
if TYPE_CHECKING:  # at run time, `tuple[...]` and `X | Y` need a newer Python than a target may run
    Errors = Callable[[str, tuple[Any, ...], dict[str, Any]], BaseException]
    #: (detail, the full text an arm's ``match`` reads, whether the call is inside a transaction)
    Describe = Callable[
        [tuple[Any, ...], dict[str, Any]], tuple[str, str] | tuple[str, str, bool] | None
    ]
    Call = tuple[tuple[Any, ...], dict[str, Any]]


def _act_sync(arm: dict[str, Any], key: str, error: Errors, when: str, call: Call) -> None:
    assert _runtime is not None
    _runtime.announce(arm, key)
    action = arm.get("action", "crash")
    if action == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "raise":
        raise error(when, call[0], call[1])
    while _runtime.still_armed(arm.get("id")):  # hang until healed
        time.sleep(HANG_POLL_SECONDS)


async def _act(arm: dict[str, Any], key: str, error: Errors, when: str, call: Call) -> None:
    import asyncio

    assert _runtime is not None
    _runtime.announce(arm, key)
    action = arm.get("action", "crash")
    if action == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "raise":
        raise error(when, call[0], call[1])
    # hang until healed: the release is another process rewriting armed.json
    while _runtime.still_armed(arm.get("id")):  # noqa: ASYNC110
        await asyncio.sleep(HANG_POLL_SECONDS)


def point(
    library: str,
    op: str,
    describe: Describe,
    error: Errors,
    sent: Callable[[tuple[Any, ...]], Any] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Make a point of every call of the decorated function: ``describe(args, kwargs)`` gives
    (detail, full text to match), or None for a call that is not a point. ``sent(args)`` (a
    coroutine) makes sure what the call wrote has left the process before an arm acts *after*
    it: a client that buffers (nats-py) would otherwise lose it with the process, and "after"
    would mean "before"."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        if getattr(function, "__chaos_point__", False):
            return function
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                runtime = _runtime
                if runtime is None or _inside.get():
                    return await function(*args, **kwargs)
                described = describe(args, kwargs)
                if described is None:
                    return await function(*args, **kwargs)
                detail, full, *state = described
                key = runtime.event(library, op, detail, bool(state and state[0]))
                arms = runtime.matching(key, op, full) if runtime.armed else []
                for arm in arms:
                    if runtime.take(arm, "before"):
                        await _act(arm, key, error, "before", (args, kwargs))
                token = _inside.set(True)
                try:
                    result = await function(*args, **kwargs)
                    firing = [arm for arm in arms if runtime.take(arm, "after")]
                    if firing and sent is not None:
                        with contextlib.suppress(Exception):
                            await sent(args)
                finally:
                    _inside.reset(token)
                for arm in firing:
                    await _act(arm, key, error, "after", (args, kwargs))
                return result

            wrapper: Any = async_wrapper
        else:

            @functools.wraps(function)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                runtime = _runtime
                if runtime is None or _inside.get():
                    return function(*args, **kwargs)
                described = describe(args, kwargs)
                if described is None:
                    return function(*args, **kwargs)
                detail, full, *state = described
                key = runtime.event(library, op, detail, bool(state and state[0]))
                arms = runtime.matching(key, op, full) if runtime.armed else []
                for arm in arms:
                    if runtime.take(arm, "before"):
                        _act_sync(arm, key, error, "before", (args, kwargs))
                token = _inside.set(True)
                try:
                    result = function(*args, **kwargs)
                finally:
                    _inside.reset(token)
                for arm in arms:
                    if runtime.take(arm, "after"):
                        _act_sync(arm, key, error, "after", (args, kwargs))
                return result

            wrapper = sync_wrapper
        wrapper.__chaos_point__ = True
        decorated: Callable[..., Any] = wrapper
        return decorated

    return decorate


def _loaded(module_name: str, qualified: str) -> Any:
    """``module_name``'s class ``qualified``, or None while the module is not (fully) imported:
    the library's modules import each other, and each patch runs again as the next one loads."""
    owner: Any = sys.modules.get(module_name)
    for part in qualified.split("."):
        owner = getattr(owner, part, None)
    return owner


def _wrap(owner: Any, names: tuple[str, ...], make: Callable[[str], Callable[..., Any]]) -> None:
    if owner is None:
        return
    for name in names:
        original = owner.__dict__.get(name)
        if original is not None and callable(original):
            setattr(owner, name, make(name)(original))


# ----------------------------------------------------------------------------- the libraries
def _sql_call(position: int = 1) -> Describe:
    def describe(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, str, bool] | None:
        query = args[position] if len(args) > position else kwargs.get("query", "")
        if _is_driver_sql(query):
            return None
        return sql_detail(query), str(query), _in_transaction(args[0])

    return describe


def _in_transaction(connection: Any) -> bool:
    check = getattr(connection, "is_in_transaction", None)
    try:
        return bool(check()) if check is not None else False
    except Exception:  # noqa: BLE001 - a closed connection is in no transaction
        return False


def _asyncpg_error(when: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> BaseException:
    from asyncpg import exceptions

    error: BaseException = exceptions.ConnectionDoesNotExistError(
        f"connection was closed in the middle of operation (point fault {when} the call)"
    )
    return error


def _patch_asyncpg(module: Any) -> None:
    connection = _loaded("asyncpg.connection", "Connection")
    if connection is not None:
        names = ("execute", "executemany", "fetch", "fetchrow", "fetchval", "fetchmany")
        _wrap(
            connection,
            names,
            lambda name: point("asyncpg", f"asyncpg.{name}", _sql_call(), _asyncpg_error),
        )
        copies = ("copy_from_table", "copy_from_query", "copy_to_table", "copy_records_to_table")
        _wrap(
            connection,
            copies,
            lambda name: point(
                "asyncpg",
                f"asyncpg.{name}",
                lambda a, k: (str(a[1]) if len(a) > 1 else "", ""),
                _asyncpg_error,
            ),
        )
    prepared = _loaded("asyncpg.prepared_stmt", "PreparedStatement")
    if prepared is not None:

        def describe(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, str] | None:
            query = getattr(args[0], "_query", "")
            return None if _is_driver_sql(query) else (sql_detail(query), str(query))

        _wrap(
            prepared,
            ("fetch", "fetchrow", "fetchval", "fetchmany", "executemany"),
            lambda name: point("asyncpg", f"asyncpg.prepared.{name}", describe, _asyncpg_error),
        )


def _nats_error(when: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> BaseException:
    from nats import errors

    return errors.TimeoutError() if when == "after" else errors.ConnectionClosedError()


async def _flush_client(args: tuple[Any, ...]) -> None:
    await args[0].flush(timeout=1)


async def _flush_message(args: tuple[Any, ...]) -> None:
    await args[0]._client.flush(timeout=1)


def _subject(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, str] | None:
    subject = str(args[1] if len(args) > 1 else kwargs.get("subject", ""))
    return _normal(subject), subject


def _patch_nats(module: Any) -> None:
    _wrap(
        _loaded("nats.aio.client", "Client"),
        ("publish",),
        lambda name: point("nats", "nats.publish", _subject, _nats_error, _flush_client),
    )
    _wrap(
        _loaded("nats.js.client", "JetStreamContext"),
        ("publish",),
        lambda n: point("nats", "nats.js.publish", _subject, _nats_error),
    )
    _wrap(
        _loaded("nats.js.client", "JetStreamContext.PullSubscription"),
        ("fetch",),
        lambda n: point("nats", "nats.js.fetch", lambda a, k: ("", ""), _nats_error),
    )
    _wrap(
        _loaded("nats.aio.msg", "Msg"),
        ("ack", "ack_sync", "nak", "term", "in_progress"),
        lambda name: point(
            "nats", f"nats.{name}", lambda a, k: ("", ""), _nats_error, _flush_message
        ),
    )


def _httpx_error(when: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> BaseException:
    import httpx

    request = args[1] if len(args) > 1 else kwargs.get("request")
    if when == "after":
        return httpx.ReadTimeout("point fault: no answer", request=request)
    return httpx.ConnectError("point fault: connection refused", request=request)


def _request(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, str] | None:
    request = args[1] if len(args) > 1 else kwargs.get("request")
    url = getattr(request, "url", "")
    method = getattr(request, "method", "")
    path = getattr(url, "path", str(url))
    return f"{method} {_normal(path)}", f"{method} {url}"


def _patch_httpx(module: Any) -> None:
    make = lambda name: point("httpx", "httpx.send", _request, _httpx_error)  # noqa: E731
    _wrap(getattr(module, "AsyncClient", None), ("send",), make)
    _wrap(getattr(module, "Client", None), ("send",), make)


def _aiohttp_error(when: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> BaseException:
    import aiohttp

    if when == "after":
        return aiohttp.ServerTimeoutError("point fault: no answer")
    return aiohttp.ClientConnectionError("point fault: connection refused")


def _patch_aiohttp(module: Any) -> None:
    def describe(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, str] | None:
        method = str(args[1] if len(args) > 1 else kwargs.get("method", ""))
        url = str(args[2] if len(args) > 2 else kwargs.get("str_or_url", ""))
        path = re.sub(r"^\w+://[^/]*", "", url).split("?")[0]
        return f"{method} {_normal(path)}", f"{method} {url}"

    _wrap(
        getattr(module, "ClientSession", None),
        ("_request",),
        lambda name: point("aiohttp", "aiohttp.request", describe, _aiohttp_error),
    )


def _redis_error(when: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> BaseException:
    from redis import exceptions

    error: BaseException = exceptions.ConnectionError(f"point fault {when}: connection lost")
    return error


def _patch_redis(module: Any) -> None:
    def command(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, str] | None:
        words = [str(word) for word in args[1:3]]
        name = words[0].upper() if words else ""
        key = words[1].split(":")[0] if len(words) > 1 else ""
        return f"{name} {_normal(key)}".strip(), " ".join(words)

    def pipeline(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, str] | None:
        stack = getattr(args[0], "command_stack", [])
        names = " ".join(str(getattr(c, "args", c)[0]) for c in stack[:3]) if stack else ""
        return f"MULTI {names}".strip(), names

    _wrap(
        _loaded("redis.asyncio.client", "Redis"),
        ("execute_command",),
        lambda name: point("redis", "redis.command", command, _redis_error),
    )
    _wrap(
        _loaded("redis.asyncio.client", "Pipeline"),
        ("execute",),
        lambda name: point("redis", "redis.pipeline", pipeline, _redis_error),
    )


def _sqlalchemy_error(when: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> BaseException:
    from sqlalchemy import exc

    lost = ConnectionError(f"connection lost {when} the call")
    error: BaseException = exc.OperationalError("point fault", None, lost)
    return error


def _patch_sqlalchemy(module: Any) -> None:
    session = _loaded("sqlalchemy.ext.asyncio.session", "AsyncSession")
    engine = _loaded("sqlalchemy.ext.asyncio.engine", "AsyncConnection")

    def statement(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, str] | None:
        text = str(args[1] if len(args) > 1 else kwargs.get("statement", ""))
        return sql_detail(text), text

    nothing = lambda a, k: ("", "")  # noqa: E731
    if session is not None:
        _wrap(
            session,
            ("execute",),
            lambda n: point("sqlalchemy", "sqlalchemy.execute", statement, _sqlalchemy_error),
        )
        _wrap(
            session,
            ("commit", "flush"),
            lambda name: point("sqlalchemy", f"sqlalchemy.{name}", nothing, _sqlalchemy_error),
        )
    if engine is not None:
        _wrap(
            engine,
            ("execute",),
            lambda n: point("sqlalchemy", "sqlalchemy.execute", statement, _sqlalchemy_error),
        )
        _wrap(
            engine,
            ("commit",),
            lambda n: point("sqlalchemy", "sqlalchemy.commit", nothing, _sqlalchemy_error),
        )


#: module whose import means the library is ready to patch -> the patch
PATCHES: dict[str, Callable[[Any], None]] = {
    "asyncpg.prepared_stmt": _patch_asyncpg,
    "asyncpg.connection": _patch_asyncpg,
    "nats.aio.client": _patch_nats,
    "nats.aio.msg": _patch_nats,
    "nats.js.client": _patch_nats,
    "httpx": _patch_httpx,
    "aiohttp": _patch_aiohttp,
    "redis.asyncio.client": _patch_redis,
    "sqlalchemy.ext.asyncio.session": _patch_sqlalchemy,
    "sqlalchemy.ext.asyncio.engine": _patch_sqlalchemy,
}


def _patch_extra(spec: str) -> None:
    """``module:Qualified.name``: a function of the service's own to make a point of."""
    module_name, _, qualified = spec.partition(":")
    module = importlib.import_module(module_name)
    owner: Any = module
    *path, name = qualified.split(".")
    for part in path:
        owner = getattr(owner, part)
    op = f"call.{qualified}"
    make = point(module_name.partition(".")[0], op, lambda a, k: ("", ""), _generic_error)
    setattr(owner, name, make(getattr(owner, name)))


def _generic_error(when: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> BaseException:
    return ConnectionError(f"point fault {when} the call")


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, patches: list[Callable[[Any], None]]) -> None:
        self._loader = loader
        self._patches = patches

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        for patch in self._patches:
            _apply(patch, module)


def _apply(patch: Callable[[Any], None], module: Any) -> None:
    try:
        patch(module)
    except Exception as error:  # noqa: BLE001 - a library we cannot patch keeps working
        sys.stderr.write(f"chaos-model: cannot patch {module.__name__}: {error}\n")


class _PatchingFinder(importlib.abc.MetaPathFinder):
    """Patches each module it has patches for right after the module is imported."""

    def __init__(self) -> None:
        self.patches: dict[str, list[Callable[[Any], None]]] = {}

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        patches = self.patches.get(name)
        if not patches:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchingLoader(spec.loader, list(patches))
                return spec
        return None


#: the one finder of the process: two would each find a module through the other, forever
_finder: _PatchingFinder | None = None


def on_import(patches: dict[str, Callable[[Any], None]]) -> None:
    """Run each patch on its module (a module name -> the patch) right after the module is
    imported, or now if it already is."""
    global _finder
    if _finder is None:
        _finder = _PatchingFinder()
        sys.meta_path.insert(0, _finder)
    for name, patch in patches.items():
        _finder.patches.setdefault(name, []).append(patch)
        if name in sys.modules:
            _apply(patch, sys.modules[name])


def install(folder: str | None = None, service: str | None = None) -> bool:
    """Start the runtime when the environment names a control folder; True when it did."""
    global _runtime
    folder = folder or os.environ.get(ENV_DIR)
    if not folder or _runtime is not None:
        return False
    _runtime = Runtime(folder, service or os.environ.get(ENV_SERVICE, "service"))
    skip = {name.strip() for name in os.environ.get(ENV_SKIP, "").split(",") if name.strip()}
    on_import({m: p for m, p in PATCHES.items() if m.partition(".")[0] not in skip})
    extra = os.environ.get(ENV_EXTRA, "")
    if extra:
        _ExtraOnImport([spec.strip() for spec in extra.split(",") if spec.strip()]).start()
    return True


class _ExtraOnImport(importlib.abc.MetaPathFinder):
    """Makes points of the service's own functions once their modules are imported."""

    def __init__(self, specs: list[str]) -> None:
        self._pending = {spec.partition(":")[0]: spec for spec in specs}

    def start(self) -> None:
        sys.meta_path.insert(0, self)

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        spec_text = self._pending.pop(name, None)
        if spec_text is None:
            return None
        for finder in sys.meta_path:
            if finder is self or isinstance(finder, _PatchingFinder):
                continue
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchingLoader(spec.loader, [lambda m: _patch_extra(spec_text)])
                return spec
        return None


__all__ = ["install", "on_import", "point", "sql_detail"]
