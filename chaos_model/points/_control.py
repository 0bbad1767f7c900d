"""chaos-model's side of a stack's point control folder.

The folder (``<stack dir>/points``) holds ``armed.json`` (what to do at which point, replaced
atomically by chaos-model), ``counts.json`` (each arm's matching calls and whether it fired,
updated by the services under ``points.lock``), ``events/<service>.<pid>.sites`` (each point a
process reached, once) and ``events/<service>.<pid>.log`` (every call: the example's generation
and the point's id in that process), and ``modules/<service>.txt`` (what a service imports, for
its warm standby).
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

BOOT_DIR = Path(__file__).resolve().parent.parent / "boot" / "site"
ENV_DIR = "CHAOS_MODEL_POINTS"
#: where the bootstrap sends calls to api.telegram.org (chaos_redirect)
ENV_TELEGRAM = "CHAOS_TELEGRAM_API"
ENV_SERVICE = "CHAOS_MODEL_SERVICE"
ENV_APP = "CHAOS_MODEL_APP_PACKAGES"
ENV_EXTRA = "CHAOS_MODEL_POINT_FUNCTIONS"
_PYTHON = re.compile(r"python(\d+(\.\d+)?)?$")

When = Literal["before", "after"]
Action = Literal["crash", "hang", "raise"]
WHENS: tuple[When, ...] = ("before", "after")
ACTIONS: tuple[Action, ...] = ("crash", "hang", "raise")


@dataclass(frozen=True)
class Point:
    """One I/O call site of a service, as its process first reported it."""

    service: str
    key: str
    op: str
    detail: str = ""
    chain: str = ""
    module: str = ""
    function: str = ""
    line: int = 0
    file: str = ""
    #: the call is inside a database transaction: nothing it does outlives a crash by itself
    in_transaction: bool = False

    @property
    def location(self) -> str:
        """``pipeline_app.db:98`` (a module run as ``__main__``: its file's last two parts)."""
        if not self.module:
            return "(library code)"
        if self.module == "__main__" and self.file:
            return f"{'/'.join(Path(self.file).parts[-2:])}:{self.line}"
        return f"{self.module}:{self.line}"

    @property
    def kind(self) -> str:
        """What the call does to the outside world: commit, write, publish, ack, read, call."""
        op, detail = self.op, self.detail.upper()
        if detail.startswith("COMMIT") or op.endswith((".commit", ".flush")):
            return "commit"
        if detail.startswith(("INSERT", "UPDATE", "DELETE")) or op.endswith(
            ("executemany", "copy_records_to_table", "copy_to_table")
        ):
            return "write"
        if op.endswith("publish"):
            return "publish"
        if op.split(".")[-1] in ("ack", "ack_sync", "nak", "term", "in_progress"):
            return "ack"
        if op.startswith(("httpx", "aiohttp")):
            return "call"
        if op.startswith("redis"):
            return "write" if detail.split(" ")[0] in ("SET", "DEL", "INCR", "EXPIRE") else "read"
        return "read"

    @property
    def durable(self) -> bool:
        """What the call did outlives a crash right after it: a commit, a write outside a
        transaction, a publish, an acknowledgement, a call to another service."""
        kind = self.kind
        if kind == "write":
            return not self.in_transaction
        return kind in ("commit", "publish", "ack", "call")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Arm:
    """What to do at a point: at the ``occurrence``-th matching call of ``service`` after it is
    armed, ``before`` or ``after`` the call, crash (SIGKILL), hang until healed, or raise the
    library's own exception (``error`` names another). ``point`` is a point's key (empty: any
    site); ``op`` and ``match`` (a regular expression on the SQL, subject or URL) narrow it."""

    service: str
    point: str = ""
    when: When = "after"
    occurrence: int = 1
    action: Action = "crash"
    op: str = ""
    match: str = ""
    error: str = ""

    def __post_init__(self) -> None:
        if self.when not in WHENS:
            raise ValueError(f"a point fault fires before or after the call, not {self.when!r}")
        if self.action not in ACTIONS:
            raise ValueError(f"a point fault's action is crash, hang or raise, not {self.action!r}")
        if self.occurrence < 1:
            raise ValueError(f"occurrence counts from 1, not {self.occurrence}")
        if self.match:
            re.compile(self.match)

    @property
    def id(self) -> str:
        fields = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(fields.encode()).hexdigest()[:12]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, **dataclasses.asdict(self)}


@dataclass
class Reached:
    """The points an example reached: how many times each, in the order first reached, and
    when (``time.monotonic()``, which every process on the machine shares)."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    calls: list[tuple[float, str, str]] = field(default_factory=list)

    def add(self, service: str, key: str, at: float = 0.0) -> None:
        self.counts[(service, key)] = self.counts.get((service, key), 0) + 1
        self.calls.append((at, service, key))

    def last_before(self, service: str, moment: float) -> str | None:
        """The key of the last call ``service`` made before ``moment``."""
        before = [call for call in self.calls if call[1] == service and call[0] <= moment]
        return max(before)[2] if before else None

    def __contains__(self, item: tuple[str, str]) -> bool:
        return item in self.counts

    def __len__(self) -> int:
        return len(self.counts)


class PointControl:
    """The control folder of one stack."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self._generation = 0
        #: per event log: bytes read so far
        self._offsets: dict[Path, int] = {}
        #: per process (log stem): its point ids -> (service, key)
        self._ids: dict[str, dict[int, tuple[str, str]]] = {}
        self._points: dict[tuple[str, str], Point] = {}
        self._reached: dict[int, Reached] = {}

    @property
    def armed_path(self) -> Path:
        return self.folder / "armed.json"

    @property
    def events_dir(self) -> Path:
        return self.folder / "events"

    def modules_file(self, service: str) -> Path:
        return self.folder / "modules" / f"{service}.txt"

    @property
    def generation(self) -> int:
        return self._generation

    # ------------------------------------------------------------------ arming
    def prepare(self) -> None:
        self.events_dir.mkdir(parents=True, exist_ok=True)
        (self.folder / "modules").mkdir(exist_ok=True)
        self._write([])

    def new_example(self) -> int:
        """A new example begins: nothing armed, nothing counted, events counted afresh."""
        self._generation += 1
        with self._locked():
            (self.folder / "counts.json").unlink(missing_ok=True)
        self._write([])
        return self._generation

    def arm(self, arm: Arm) -> None:
        armed = [entry for entry in self.armed() if entry.get("id") != arm.id]
        self._write([*armed, arm.to_json()])

    def disarm(self, arm_id: str) -> None:
        self._write([entry for entry in self.armed() if entry.get("id") != arm_id])

    def disarm_all(self) -> list[dict[str, Any]]:
        """Disarm every point (a process hanging at one goes on); return what was armed."""
        armed = self.armed()
        if armed:
            self._write([])
        return armed

    def armed(self) -> list[dict[str, Any]]:
        try:
            state = json.loads(self.armed_path.read_text())
        except (OSError, ValueError):
            return []
        return list(state.get("armed", []))

    def fired(self) -> dict[str, dict[str, Any]]:
        """Arm id -> what firing it recorded (the pid, the time), for the arms that fired."""
        try:
            counts = json.loads((self.folder / "counts.json").read_text())
        except (OSError, ValueError):
            return {}
        return {arm_id: entry for arm_id, entry in counts.items() if entry.get("fired")}

    def _write(self, armed: Sequence[Mapping[str, Any]]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        fresh = self.folder / f".armed.{os.getpid()}.tmp"
        fresh.write_text(json.dumps({"generation": self._generation, "armed": list(armed)}))
        os.replace(fresh, self.armed_path)  # a new inode: every process sees the change

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / "points.lock").open("a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    # ------------------------------------------------------------------ events
    def points(self) -> dict[tuple[str, str], Point]:
        """Every point any process of the stack reached so far, by (service, key)."""
        self._read()
        return dict(self._points)

    def reached(self, generation: int | None = None) -> Reached:
        """The points reached in an example (default: the current one)."""
        self._read()
        return self._reached.get(self._generation if generation is None else generation, Reached())

    def _read(self) -> None:
        if not self.events_dir.is_dir():
            return
        for sites in sorted(self.events_dir.glob("*.sites")):
            self._read_sites(sites)
        for log in sorted(self.events_dir.glob("*.log")):
            self._read_log(log)

    def _new_lines(self, path: Path) -> list[str]:
        offset = self._offsets.get(path, 0)
        try:
            with path.open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except OSError:
            return []
        complete = data.rfind(b"\n") + 1  # a line being written is read next time
        self._offsets[path] = offset + complete
        return data[:complete].decode(errors="replace").splitlines()

    def _read_sites(self, path: Path) -> None:
        ids = self._ids.setdefault(path.stem, {})
        for line in self._new_lines(path):
            try:
                record = json.loads(line)
                point = Point(
                    service=str(record["service"]),
                    key=str(record["key"]),
                    op=str(record["op"]),
                    detail=str(record.get("detail", "")),
                    chain=str(record.get("chain", "")),
                    module=str(record.get("module", "")),
                    function=str(record.get("function", "")),
                    line=int(record.get("line", 0)),
                    file=str(record.get("file", "")),
                    in_transaction=bool(record.get("in_transaction", False)),
                )
            except (ValueError, KeyError, TypeError):
                continue
            ids[int(record["id"])] = (point.service, point.key)
            self._points.setdefault((point.service, point.key), point)

    def _read_log(self, path: Path) -> None:
        ids = self._ids.get(path.stem, {})
        for line in self._new_lines(path):
            fields = line.split(" ")
            try:
                generation, where = int(fields[0]), ids[int(fields[1])]
                at = float(fields[2]) if len(fields) > 2 else 0.0
            except (ValueError, KeyError, IndexError):
                continue
            self._reached.setdefault(generation, Reached()).add(*where, at)


def is_python_command(argv: Sequence[str]) -> bool:
    """A Python interpreter, or a script it runs (a console script's ``#!...python`` line)."""
    if not argv:
        return False
    program = argv[0]
    if _PYTHON.search(Path(program).name):
        return True
    try:
        with open(program, "rb") as handle:
            first = handle.readline(200)
    except OSError:
        return False
    return first.startswith(b"#!") and b"python" in first


def telegram_environment(env: Mapping[str, str], bot_api_url: str) -> dict[str, str]:
    """The environment that sends a Python service's calls to Telegram's Bot API to the fake at
    ``bot_api_url``: the bootstrap on its ``PYTHONPATH`` (fault points or not) and the URL."""
    existing = env.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    parts = [part for part in existing.split(os.pathsep) if part]
    path = os.pathsep.join(parts if str(BOOT_DIR) in parts else [str(BOOT_DIR), *parts])
    return {"PYTHONPATH": path, ENV_TELEGRAM: bot_api_url}


def boot_environment(
    folder: Path,
    service: str,
    env: Mapping[str, str],
    *,
    app_packages: Sequence[str] = (),
    functions: Sequence[str] = (),
) -> dict[str, str]:
    """The environment that gives a Python service its fault points: the bootstrap first on its
    ``PYTHONPATH`` (before what ``env`` or this process already put there), the control folder
    and its service name."""
    existing = env.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    path = os.pathsep.join(part for part in (str(BOOT_DIR), existing) if part)
    boot = {"PYTHONPATH": path, ENV_DIR: str(folder), ENV_SERVICE: service}
    if app_packages:
        boot[ENV_APP] = ",".join(app_packages)
    if functions:
        boot[ENV_EXTRA] = ",".join(functions)
    return boot
