"""Faults are data: frozen dataclasses that serialise to JSON, each with ``apply`` and ``heal``.

A fault module defines one dataclass and registers it with :func:`register`, so a saved program
can name faults by ``kind`` and rebuild them with :func:`fault_from_json`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, TypeVar

from chaos_model.stack import Stack

F = TypeVar("F", bound="Fault")

REGISTRY: dict[str, type[Fault]] = {}


@dataclasses.dataclass(frozen=True)
class Fault:
    """Base of every fault. ``apply`` injects it into a stack; ``heal`` undoes it."""

    kind: ClassVar[str] = "fault"
    #: True when the fault is over as soon as it is applied (nothing to heal later).
    instant: ClassVar[bool] = False

    def apply(self, stack: Stack) -> None:
        raise NotImplementedError

    def heal(self, stack: Stack) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        fields = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self))
        return f"{self.kind}({fields})"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}


def register(cls: type[F]) -> type[F]:
    if cls.kind in REGISTRY:
        raise ValueError(f"fault kind {cls.kind!r} registered twice")
    REGISTRY[cls.kind] = cls
    return cls


def fault_from_json(data: dict[str, Any]) -> Fault:
    fields = dict(data)
    kind = fields.pop("kind", None)
    if kind not in REGISTRY:
        raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[kind](**fields)
