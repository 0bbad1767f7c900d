"""Invariants: safety (checked every step) and liveness (checked after heal and quiescence).

Each invariant names the observations it needs; :func:`applicable` leaves out those a target's
adapter cannot observe (no WebSocket feed, no attempt counts) and those it skips on purpose.
"""

from chaos_model.adapter import TargetSpec
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


def features(spec: TargetSpec) -> frozenset[str]:
    """What a target lets the model observe."""
    observe = spec.observe
    present = {
        "feed": spec.has_feed,
        "knowledge": bool(observe.knowledge),
        "attempts": bool(observe.attempts),
        "events": bool(observe.events),
    }
    return frozenset(name for name, has in present.items() if has)


def applicable(spec: TargetSpec) -> tuple[tuple[Invariant, ...], tuple[Invariant, ...]]:
    """The (safety, liveness) invariants that apply to the target of ``spec``."""
    have = features(spec)

    def keep(invariant: Invariant) -> bool:
        return invariant.needs <= have and invariant.name not in spec.skip_invariants

    return tuple(filter(keep, SAFETY)), tuple(filter(keep, LIVENESS))


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
    "applicable",
    "features",
]
