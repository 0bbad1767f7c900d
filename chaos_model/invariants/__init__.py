"""Invariants: safety (checked every step) and liveness (checked after heal and quiescence).

Each invariant names the observations it needs; :func:`applicable` leaves out those a target's
adapter cannot observe (no WebSocket feed, no attempt counts, no ``[oracle]`` to read the LLM
stub's records with) and those it skips on purpose. The invariants of :data:`ORACLE` compare
what is stored with what the reference model (:mod:`chaos_model.oracle`) says should be.
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
from chaos_model.invariants.content import ContentAsSentAndAnswered
from chaos_model.invariants.cost import LLMCostWithinBounds
from chaos_model.invariants.latency import WebhookAnswersInTime
from chaos_model.invariants.liveness import LIVENESS as SHAPE_LIVENESS
from chaos_model.invariants.outcome import OutcomeAsPredicted
from chaos_model.invariants.safety import SAFETY as SHAPE_SAFETY
from chaos_model.invariants.stages import StageRulesHold

#: the invariants that compare what is stored with what the reference model says should be
ORACLE: tuple[Invariant, ...] = (
    StageRulesHold(),
    ContentAsSentAndAnswered(),
    LLMCostWithinBounds(),
    WebhookAnswersInTime(),
    OutcomeAsPredicted(),
)
SAFETY = SHAPE_SAFETY + tuple(inv for inv in ORACLE if inv.kind == "safety")
LIVENESS = SHAPE_LIVENESS + tuple(inv for inv in ORACLE if inv.kind == "liveness")
ALL = SAFETY + LIVENESS


def features(spec: TargetSpec) -> frozenset[str]:
    """What a target lets the model observe."""
    observe = spec.observe
    present = {
        "feed": spec.has_feed,
        "knowledge": bool(observe.knowledge),
        "attempts": bool(observe.attempts),
        "events": bool(observe.events),
        "oracle": spec.oracle is not None,
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
    "ORACLE",
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
