"""The ``[stage_graph]`` and ``[oracle]`` sections of an adapter: the order of the target's own
stages, and what the reference model needs to tell what each message must become.

Keys (all optional)::

    [stage_graph]
    # the stages (model names) that must come before each stage: a message stored at a stage
    # holds what they store (a score from `scored` on) and, with [observe] events, their events
    # before its own
    requires = { scored = ["received"], extracted = ["received", "scored"] }
    terminal = ["extracted", "failed"]

    [oracle]
    message_key = "message-{id}"  # the LLM stub's message key of the calls made for message N
    # the stub's answer rule of the call each LLM stage makes (see the stub's records)
    calls = { scored = "reference-score", extracted = "reference-extract" }
    score_field = "score"         # the answer's field stored as the message's score
    items_field = "items"         # the answer's field whose list is stored as knowledge items
    score_tolerance = 0.0         # how far a stored score may be from the answer (rounding)
    extra_calls = 0               # LLM calls a stage may make beyond its attempt budget
    # each LLM stage's name in [observe] attempts, when the target counts attempts
    attempts = { scored = "score", extracted = "extract" }

Without ``[stage_graph]`` the model's own graph applies (received -> scored -> extracted, failed
from any unfinished stage); without ``[oracle]`` the invariants that compare stored outcomes with
the stub's answers do not apply.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chaos_model.message_ids import MessageId, message_id

if TYPE_CHECKING:
    from chaos_model.adapter._load import _Table

MODEL_STAGES = ("received", "scored", "extracted", "failed")
#: the model stages whose move stores an LLM answer: a score, then knowledge items
LLM_STAGES = ("scored", "extracted")


@dataclass(frozen=True)
class StageGraph:
    """Which stages must come before each stage, and which stages are final."""

    requires: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {"scored": ("received",), "extracted": ("received", "scored")}
    )
    terminal: frozenset[str] = frozenset({"extracted", "failed"})

    def predecessors(self, stage: str) -> tuple[str, ...]:
        """Every stage that must come before ``stage``, directly or through another, in the
        model's order."""
        found: set[str] = set()
        todo = list(self.requires.get(stage, ()))
        while todo:
            before = todo.pop()
            if before not in found:
                found.add(before)
                todo.extend(self.requires.get(before, ()))
        return tuple(name for name in MODEL_STAGES if name in found)

    def llm_stages(self, calls: Mapping[str, str]) -> tuple[str, ...]:
        """The stages of ``calls`` in the order a message goes through them."""
        return tuple(sorted(calls, key=lambda stage: (len(self.predecessors(stage)), stage)))


@dataclass(frozen=True)
class OracleSpec:
    """How the reference model reads a target's LLM calls out of the stub's records."""

    message_key: str
    calls: Mapping[str, str]
    score_field: str = "score"
    items_field: str = "items"
    score_tolerance: float = 0.0
    extra_calls: int = 0
    attempts: Mapping[str, str] = field(default_factory=dict)

    def key_of(self, message_id: MessageId) -> str:
        return self.message_key.replace("{id}", str(message_id))

    def message_of(self, key: str) -> MessageId | None:
        """The message id a stub key belongs to (an integer, a UUID, any text, as
        :func:`~chaos_model.message_ids.message_id` gives it); None for a key of another
        shape."""
        prefix, _, suffix = self.message_key.partition("{id}")
        found = re.fullmatch(f"{re.escape(prefix)}(.+?){re.escape(suffix)}", key, re.DOTALL)
        return message_id(found.group(1)) if found else None

    def stage_of(self, rule: str) -> str | None:
        """The stage whose call the stub's answer rule ``rule`` answers, if any."""
        return next((stage for stage, name in self.calls.items() if name == rule), None)


def parse_stage_graph(table: _Table) -> StageGraph:
    default = StageGraph()
    requires: dict[str, tuple[str, ...]] = dict(default.requires)
    given = table._get("requires", dict, False)
    if given is not None:
        requires = {}
        for stage, before in given.items():
            _check_stage(table, f"requires.{stage}", stage)
            if not isinstance(before, list) or not all(isinstance(s, str) for s in before):
                table.fail(f"requires.{stage}", "expected a list of stage names")
            for name in before:
                _check_stage(table, f"requires.{stage}", name)
                if name == stage:
                    table.fail(f"requires.{stage}", "a stage cannot require itself")
            requires[stage] = tuple(before)
    terminal = table.words("terminal", tuple(sorted(default.terminal)), known=MODEL_STAGES)
    table.done()
    graph = StageGraph(requires, frozenset(terminal))
    for stage in requires:
        if stage in graph.predecessors(stage):
            table.fail(f"requires.{stage}", "the stages require each other in a circle")
    return graph


def parse_oracle(table: _Table) -> OracleSpec:
    message_key = table.text("message_key")
    if message_key.count("{id}") != 1:
        table.fail(
            "message_key", f"expected one {{id}} in it ('message-{{id}}'), got {message_key!r}"
        )
    calls = _stage_names(table, "calls", required=True)
    extra = table._get("extra_calls", int, False)
    if extra is not None and extra < 0:
        table.fail("extra_calls", f"must be 0 or more, got {extra}")
    spec = OracleSpec(
        message_key=message_key,
        calls=calls,
        score_field=table.text("score_field", "score"),
        items_field=table.text("items_field", "items"),
        score_tolerance=table.number("score_tolerance", 0.0, positive=False),
        extra_calls=extra or 0,
        attempts=_stage_names(table, "attempts"),
    )
    table.done()
    return spec


def _stage_names(table: _Table, key: str, *, required: bool = False) -> dict[str, str]:
    """A table of LLM stage -> a name (an answer rule, an attempts stage)."""
    given = table._get(key, dict, required)
    names: dict[str, str] = {}
    for stage, name in (given or {}).items():
        if stage not in LLM_STAGES:
            table.fail(
                f"{key}.{stage}",
                f"not a stage whose move stores an LLM answer; expected {' or '.join(LLM_STAGES)}",
            )
        if not isinstance(name, str) or not name:
            table.fail(f"{key}.{stage}", f"expected a non-empty string, got {name!r}")
        names[stage] = name
    if required and not names:
        table.fail(key, f"name the call of at least one of {', '.join(LLM_STAGES)}")
    return names


def _check_stage(table: _Table, key: str, stage: str) -> None:
    if stage not in MODEL_STAGES:
        table.fail(key, f"unknown stage {stage!r}; the model's stages: {', '.join(MODEL_STAGES)}")
