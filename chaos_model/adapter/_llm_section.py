"""The ``[llm]`` section of an adapter: how the LLM stub answers the target, and how it tells
one message's calls from another's.

Keys (all optional)::

    [llm]
    key = "user"                 # what a call's message key is: "user" (the default: OpenAI's
                                 # user field, Anthropic's metadata.user_id), "header" or "prompt"
    key_header = "X-Message-Id"  # with key = "header": the request header holding it
    key_pattern = "message (\\d+)"  # with key = "prompt": a regex on the prompt (group 1, or
                                 # the whole match, is the key)

    [[llm.rules]]                # tried in order, before the built-in rules
    name = "facts"               # named in the stub's records
    tool = "record_facts"        # matchers, all optional: a tool the call offers,
    model = "gpt-4o*"            # a glob on the model,
    prompt = "(?i)extract"       # a regex searched in the system and user texts,
    system = "(?i)rate"          # a regex searched in the system prompt alone,
    provider = "openai"          # openai | anthropic | ollama
    answer = "schema"            # one of: answer = "schema" | "score" | "extract" | "text",
    # json = { label = "ok" }    # a fixed JSON answer, or
    # text = "a fixed answer"    # a fixed text answer

The stub reads the same data as JSON (:func:`llm_spec_to_json`, :func:`llm_spec_from_json`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from chaos_model.errors import AdapterError

if TYPE_CHECKING:
    from chaos_model.adapter._load import _Table

KeySource = Literal["user", "header", "prompt"]
KEY_SOURCES: tuple[str, ...] = ("user", "header", "prompt")
PROVIDERS: tuple[str, ...] = ("openai", "anthropic", "ollama")
#: what a rule's ``answer`` may name: an instance of the request's schema, the reference
#: pipeline's score or extraction, or the stub's deterministic text
BUILTIN_ANSWERS: tuple[str, ...] = ("schema", "score", "extract", "text")


@dataclass(frozen=True)
class AnswerRule:
    """When a call matches every matcher given, answer it this way."""

    name: str
    model: str = ""
    prompt: str = ""
    system: str = ""
    tool: str = ""
    provider: str = ""
    answer: str = "schema"
    #: a fixed JSON answer (wins over ``answer``); None when not given
    json: Any = None
    #: a fixed text answer (wins over ``answer``); None when not given
    text: str | None = None


@dataclass(frozen=True)
class LLMSpec:
    key: KeySource = "user"
    key_header: str = ""
    key_pattern: str = ""
    rules: tuple[AnswerRule, ...] = field(default_factory=tuple)


def parse_llm(table: _Table) -> LLMSpec:
    key = table.text("key", "user")
    if key not in KEY_SOURCES:
        table.fail("key", f"expected one of {', '.join(KEY_SOURCES)}, got {key!r}")
    key_header = table.text("key_header", "")
    key_pattern = table.text("key_pattern", "")
    if key == "header" and not key_header:
        table.fail("key_header", "missing (required with key = 'header')")
    if key == "prompt" and not key_pattern:
        table.fail("key_pattern", "missing (required with key = 'prompt')")
    if key_pattern:
        _check_regex(table, "key_pattern", key_pattern)
    rules = table._get("rules", list, False) or []
    parsed = tuple(_rule(table, index, entry) for index, entry in enumerate(rules))
    names = [rule.name for rule in parsed]
    doubled = sorted({name for name in names if names.count(name) > 1})
    if doubled:
        table.fail("rules", f"two rules are named {doubled[0]!r}")
    table.done()
    return LLMSpec(key=key, key_header=key_header, key_pattern=key_pattern, rules=parsed)  # type: ignore[arg-type]


def _rule(parent: _Table, index: int, data: Any) -> AnswerRule:
    from chaos_model.adapter._load import _Table

    table = _Table(parent.source, f"{parent.where}.rules[{index}]", data)
    name = table.text("name")
    provider = table.text("provider", "")
    if provider and provider not in PROVIDERS:
        table.fail("provider", f"expected one of {', '.join(PROVIDERS)}, got {provider!r}")
    prompt = table.text("prompt", "")
    system = table.text("system", "")
    for key, pattern in (("prompt", prompt), ("system", system)):
        if pattern:
            _check_regex(table, key, pattern)
    given = [key for key in ("answer", "json", "text") if table.has(key)]
    if len(given) > 1:
        table.fail(given[1], f"give one of answer, json or text, not {' and '.join(given)}")
    answer = table.text("answer", "schema")
    if answer not in BUILTIN_ANSWERS:
        table.fail("answer", f"expected one of {', '.join(BUILTIN_ANSWERS)}, got {answer!r}")
    fixed = table._get("json", (dict, list, str, int, float, bool), False)
    text = table._get("text", str, False)
    rule = AnswerRule(
        name=name,
        model=table.text("model", ""),
        prompt=prompt,
        system=system,
        tool=table.text("tool", ""),
        provider=provider,
        answer=answer,
        json=fixed,
        text=text,
    )
    table.done()
    return rule


def _check_regex(table: _Table, key: str, pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as error:
        table.fail(key, f"not a valid regular expression: {error}")


def llm_spec_to_json(spec: LLMSpec) -> dict[str, Any]:
    """The JSON the stub takes (``--config`` or ``POST /control/config``)."""
    rules = []
    for rule in spec.rules:
        entry: dict[str, Any] = {"name": rule.name}
        for key in ("model", "prompt", "system", "tool", "provider"):
            if getattr(rule, key):
                entry[key] = getattr(rule, key)
        if rule.json is not None:
            entry["json"] = rule.json
        elif rule.text is not None:
            entry["text"] = rule.text
        else:
            entry["answer"] = rule.answer
        rules.append(entry)
    out: dict[str, Any] = {"key": spec.key, "rules": rules}
    if spec.key_header:
        out["key_header"] = spec.key_header
    if spec.key_pattern:
        out["key_pattern"] = spec.key_pattern
    return out


def llm_spec_from_json(data: Any, source: str | Path) -> LLMSpec:
    """Check and read the stub's configuration; a mistake is an :class:`AdapterError` naming
    ``source`` and the key."""
    from chaos_model.adapter._load import _Table

    if not isinstance(data, Mapping):
        raise AdapterError(f"{source}: llm: expected a JSON object, got {type(data).__name__}")
    return parse_llm(_Table(Path(source), "llm", data))
