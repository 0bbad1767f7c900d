"""A fake LLM provider that real clients can talk to: OpenAI, Anthropic and Ollama wire formats,
schema-valid structured answers, provider-exact failures, and records for the oracle.

Run it with ``python -m chaos_model.llm_stub --port N [--config PATH]``. What a request gets is
:func:`answer_for` of its body (the adapter's ``[llm]`` rules, then the built-in ones); the
reference pipeline's answers are :func:`expected_score` and :func:`expected_knowledge`.
"""

from chaos_model.llm._embeddings import embedding
from chaos_model.llm._faults import MODES
from chaos_model.llm._formats import answer_for
from chaos_model.llm._instances import CannotAnswer, instance
from chaos_model.llm._reference import expected_knowledge, expected_score
from chaos_model.llm._request import Ask, BadRequest
from chaos_model.llm._rules import BUILTIN_RULES, Answer, decide

__all__ = [
    "BUILTIN_RULES",
    "MODES",
    "Answer",
    "Ask",
    "BadRequest",
    "CannotAnswer",
    "answer_for",
    "decide",
    "embedding",
    "expected_knowledge",
    "expected_score",
    "instance",
]
