"""Invariants of the reference pipeline: safety (every step) and liveness (after heal)."""

from chaos_model.invariants._base import (
    CheckContext,
    Invariant,
    ModelState,
    Result,
    Unknown,
    Verdict,
)
from chaos_model.invariants.liveness import LIVENESS
from chaos_model.invariants.safety import SAFETY

ALL = SAFETY + LIVENESS

__all__ = [
    "ALL",
    "LIVENESS",
    "SAFETY",
    "CheckContext",
    "Invariant",
    "ModelState",
    "Result",
    "Unknown",
    "Verdict",
]
