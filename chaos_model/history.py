"""The history: every operation the model performed, as Jepsen records it.

Each operation appears first as ``invoke`` and then completes as ``ok`` (it happened), ``fail``
(it certainly did not happen) or ``info`` (unknown: a webhook call that timed out may or may not
have been committed). Invariants must accept both readings of ``info``.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

OpType = Literal["invoke", "ok", "fail", "info"]


@dataclass(frozen=True)
class Op:
    index: int
    process: str
    type: OpType
    f: str
    value: Any
    time: float
    error: str | None = None


@dataclass
class History:
    ops: list[Op] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def _add(self, process: str, kind: OpType, f: str, value: Any, error: str | None) -> Op:
        with self._lock:
            op = Op(len(self.ops), process, kind, f, value, time.monotonic() - self.started, error)
            self.ops.append(op)
            return op

    def invoke(self, process: str, f: str, value: Any = None) -> Op:
        return self._add(process, "invoke", f, value, None)

    def complete(
        self, invocation: Op, kind: OpType, value: Any = None, error: str | None = None
    ) -> Op:
        if kind == "invoke":
            raise ValueError("an operation completes as ok, fail or info")
        result = invocation.value if value is None else value
        return self._add(invocation.process, kind, invocation.f, result, error)

    def of(self, f: str, kind: OpType | None = None) -> list[Op]:
        with self._lock:
            return [op for op in self.ops if op.f == f and (kind is None or op.type == kind)]

    def to_json(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(op) for op in self.ops]

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1, default=str))

    @classmethod
    def from_json(cls, data: list[dict[str, Any]]) -> History:
        history = cls()
        history.ops = [Op(**item) for item in data]
        return history
