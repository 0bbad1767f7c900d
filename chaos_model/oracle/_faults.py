"""The faults of an example, as spans of the history's clock.

The machine records each fault it applies (``nemesis fault``) and each heal (``nemesis heal``,
and the stack's ``heal-all`` that ends everything). A span runs from the moment the fault began
to be applied until its heal completed; a fault that was never healed runs on forever. The spans
err on the long side: the model uses them to excuse, never to accuse.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chaos_model.history import History

#: fault kinds that end processes or connections, or misbehave only inside the LLM, without
#: holding any process back in the middle of its work
NOT_HOLDING = frozenset({"kill", "llm", "terminate_connections"})


@dataclass(frozen=True)
class FaultSpan:
    fault: Mapping[str, Any]
    start: float
    end: float = math.inf

    @property
    def kind(self) -> str:
        return str(self.fault.get("kind", "?"))

    def overlaps(self, start: float, end: float) -> bool:
        return self.start <= end and start <= self.end

    def holds_work_back(self) -> bool:
        """It can hold a process back in the middle of its work (a pause, a slow or cut link, a
        hang), as opposed to ending it at once or failing it fast; a fault the model does not
        know is taken to."""
        if self.kind in ("failpoint", "point"):
            return self.fault.get("action") not in ("crash", "error", "raise")
        return self.fault.get("action") == "hang" or self.kind not in NOT_HOLDING

    def describe(self) -> str:
        shown = {k: v for k, v in self.fault.items() if k != "kind" and v is not None}
        args = ", ".join(f"{k}={v}" for k, v in shown.items())
        until = "never healed" if self.end == math.inf else f"until {self.end:.2f}s"
        return f"{self.kind}({args}) from {self.start:.2f}s {until}"


def fault_spans(history: History) -> list[FaultSpan]:
    """Every fault the example applied, from its application to its heal."""
    spans: list[FaultSpan] = []
    open_spans: list[FaultSpan] = []
    invoked: dict[str, float] = {}
    for op in list(history.ops):
        if op.process != "nemesis":
            continue
        if op.f == "fault":
            key = repr(op.value)
            if op.type == "invoke":
                invoked[key] = op.time
            elif op.type in ("ok", "info") and isinstance(op.value, Mapping):
                open_spans.append(FaultSpan(op.value, invoked.pop(key, op.time)))
        elif op.f == "heal" and op.type == "ok":
            for span in open_spans:
                if span.fault == op.value:
                    open_spans.remove(span)
                    spans.append(FaultSpan(span.fault, span.start, op.time))
                    break
        elif op.f == "heal-all" and op.type != "invoke":
            spans += [FaultSpan(span.fault, span.start, op.time) for span in open_spans]
            open_spans = []
    return sorted(spans + open_spans, key=lambda span: span.start)


def other_than_llm(spans: list[FaultSpan], before: float) -> list[FaultSpan]:
    """The faults not the LLM's own that began by ``before``: any of them may have spent an
    attempt without a call, lost an answer, or doubled a task."""
    return [span for span in spans if span.kind != "llm" and span.start <= before]
