"""Which answer a request gets: the adapter's rules first, then the built-in ones.

Built in, in order: ``schema`` (the request carries a schema, or a tool must be called: an
instance of it), ``reference-extract`` and ``reference-score`` (the reference pipeline's
convention, chosen by its system prompt), and ``text`` (a deterministic sentence, wrapped as
``{"answer": ...}`` when a JSON object is asked for). Every answer is a pure function of the
request and the rules: :func:`decide` is what the oracle calls to recompute one.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from random import Random
from typing import Any

from chaos_model.adapter import AnswerRule, LLMSpec
from chaos_model.llm._instances import FALLBACK_WORDS, instance
from chaos_model.llm._reference import expected_knowledge, expected_score
from chaos_model.llm._request import Ask

BUILTIN_RULES: tuple[AnswerRule, ...] = (
    AnswerRule(name="schema", answer="schema"),
    AnswerRule(name="reference-extract", system="extract", answer="extract"),
    AnswerRule(name="reference-score", system="score", answer="score"),
    AnswerRule(name="text", answer="text"),
)


@dataclass(frozen=True)
class Answer:
    """What the model answers: a text, a JSON value, or a call of ``tool`` with ``value`` as
    its arguments."""

    rule: str
    value: Any
    tool: str | None = None
    is_json: bool = True

    @property
    def content(self) -> str:
        """The text the provider sends: the text itself, or the JSON serialised."""
        return self.value if not self.is_json else json.dumps(self.value)


def decide(ask: Ask, spec: LLMSpec | None = None) -> Answer:
    """The answer to ``ask`` under the adapter's rules (``spec``), then the built-in ones."""
    spec = spec or LLMSpec()
    for rule in (*spec.rules, *BUILTIN_RULES):
        answer = _try(rule, ask)
        if answer is not None:
            return answer
    raise AssertionError("the built-in text rule answers every request")  # pragma: no cover


def _try(rule: AnswerRule, ask: Ask) -> Answer | None:
    if rule.provider and rule.provider != ask.provider:
        return None
    if rule.model and not fnmatch.fnmatchcase(ask.model, rule.model):
        return None
    if rule.prompt and re.search(rule.prompt, ask.texts) is None:
        return None
    if rule.system and re.search(rule.system, ask.system) is None:
        return None
    tool = _tool_to_call(rule, ask)
    if tool == "":
        return None
    if rule.json is not None:
        return Answer(rule.name, rule.json, tool)
    if rule.text is not None:
        return None if tool else Answer(rule.name, rule.text, is_json=False)
    return _builtin(rule, ask, tool)


def _tool_to_call(rule: AnswerRule, ask: Ask) -> str | None:
    """The tool this rule's answer calls; None for no call, "" when the rule cannot answer
    the request (it names a tool not offered, or a call is due and it names another)."""
    if rule.tool:
        offered = ask.tool(rule.tool) is not None and ask.tool_choice != "none"
        if not offered or (ask.tool_choice == "tool" and ask.forced_tool != rule.tool):
            return ""
        if ask.tool_choice == "auto" and rule.tool in ask.called:
            return ""  # called already: a model answers with what the tool returned
        return rule.tool
    if ask.tool_choice == "tool":
        return ask.forced_tool
    if ask.tool_choice == "required" and ask.tools:
        fresh = [tool.name for tool in ask.tools if tool.name not in ask.called]
        return fresh[0] if fresh else ask.tools[-1].name
    return None


def _builtin(rule: AnswerRule, ask: Ask, tool: str | None) -> Answer | None:
    if rule.answer == "schema":
        schema = _schema(ask, tool)
        if schema is None:
            return None
        return Answer(rule.name, instance(schema, seed(ask, tool), ask.texts), tool)
    if rule.answer == "score":
        return Answer(rule.name, {"score": expected_score(ask.prompt)}, tool)
    if rule.answer == "extract":
        return Answer(rule.name, {"items": expected_knowledge(ask.prompt)}, tool)
    text = sentence(ask)
    if tool is not None:
        return Answer(rule.name, {"answer": text}, tool)
    if ask.json_mode or ask.schema is not None:
        return Answer(rule.name, {"answer": text})
    return Answer(rule.name, text, is_json=False)


def seed(ask: Ask, tool: str | None = None) -> int:
    """The seed of a generated answer: a hash of what was asked (the model, every message, the
    schema and the tool), so a retry of the same request gets the same answer."""
    asked = {"model": ask.model, "turns": ask.turns, "schema": _schema(ask, tool), "tool": tool}
    digest = hashlib.sha256(json.dumps(asked, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _schema(ask: Ask, tool: str | None) -> Mapping[str, Any] | None:
    """The schema the answer follows: the called tool's, or the response format's."""
    called = ask.tool(tool) if tool else None
    return called.schema if called is not None else ask.schema


def sentence(ask: Ask) -> str:
    """The stub's plain answer: a few words of the prompt, chosen by the request's seed."""
    rng = Random(seed(ask))
    words = re.findall(r"\w[\w'-]*", ask.texts)[:200] or list(FALLBACK_WORDS)
    return " ".join(rng.choice(words) for _ in range(rng.randint(5, 12)))
