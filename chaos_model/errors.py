"""The exception tree of chaos-model.

ChaosModelError
├── StackError                 a service could not be started, probed or controlled
│   ├── BinaryNotFound         a server binary (postgres, nats-server) is missing
│   ├── ServiceNotReady        a readiness probe did not pass before its deadline
│   └── StackTimeout           a reset or a probe of the stack overran its deadline
├── UnsupportedFault           this backend cannot perform the requested fault
└── UnsafeTarget               the target stack is not one chaos-model may inject faults into

Every message says what is wrong and what to do about it.
"""

from __future__ import annotations


class ChaosModelError(Exception):
    """Base class of every error chaos-model raises on purpose."""


class StackError(ChaosModelError):
    """A service of the stack could not be started, probed or controlled."""


class BinaryNotFound(StackError):
    def __init__(self, program: str, searched: list[str], hint: str) -> None:
        super().__init__(
            f"{program} not found (searched: {', '.join(searched) or 'nothing'}); {hint}"
        )
        self.program = program


class ServiceNotReady(StackError):
    def __init__(self, service: str, awaited: str, seconds: float, log_tail: str) -> None:
        tail = f"\n--- last lines of the {service} log ---\n{log_tail}" if log_tail else ""
        super().__init__(f"{service} not ready after {seconds:.1f}s: awaited {awaited}{tail}")
        self.service = service


class StackTimeout(StackError):
    """A reset or a query of the stack did not finish in time; the message is one line."""

    def __init__(self, what: str, seconds: float, awaited: str) -> None:
        super().__init__(f"{what} did not finish within {seconds:g}s: awaited {awaited}")


class UnsupportedFault(ChaosModelError):
    def __init__(self, fault: str, backend: str, reason: str = "") -> None:
        detail = f": {reason}" if reason else ""
        super().__init__(f"the {backend} backend cannot perform the fault {fault}{detail}")
        self.fault = fault
        self.backend = backend


class UnsafeTarget(ChaosModelError):
    """Raised before any fault is injected into a stack not marked as a test environment."""


class AdapterError(ChaosModelError):
    """An adapter file (or a Python adapter) is wrong: the message names the key and why."""
