"""The reference model: what the history of an example says each message must have become.

It reads three things only the model has, never the target's own bookkeeping: the LLM stub's
records (what each call asked and got), the faults the model applied and when, and Telegram's
delivery attempts. The invariants in :mod:`chaos_model.invariants` compare the target's stored
outcome with what this model predicts; where the history allows both outcomes, the prediction
is unknown.
"""

from chaos_model.oracle._calls import PROMPT_SECONDS, Call, by_message, calls_from_records
from chaos_model.oracle._faults import FaultSpan, fault_spans, other_than_llm
from chaos_model.oracle._outcome import Prediction, predict
from chaos_model.oracle._webhook import WebhookAttempt, webhook_attempts

__all__ = [
    "PROMPT_SECONDS",
    "Call",
    "FaultSpan",
    "Prediction",
    "WebhookAttempt",
    "by_message",
    "calls_from_records",
    "fault_spans",
    "other_than_llm",
    "predict",
    "webhook_attempts",
]
