"""The LLM stub's answers as pure functions: the reference convention unchanged, schema
instances valid and repeatable (across processes too), answer rules in order, message keys."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any, Literal

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from chaos_model.adapter import AnswerRule, LLMSpec
from chaos_model.llm import CannotAnswer, answer_for, expected_knowledge, expected_score, instance
from chaos_model.llm._faults import FaultSpecError, fault_from_spec
from chaos_model.llm._openai import parse_chat
from chaos_model.llm._request import BadRequest, message_key

CHAT = "/v1/chat/completions"


def _pipeline_body(purpose: str, text: str) -> dict[str, Any]:
    """What pipeline_app/llm.py sends."""
    return {
        "model": "pipeline-stub-1",
        "user": "message-7",
        "response_format": {"type": "json_object"},
        "messages": [
            {"role": "system", "content": f"task: {purpose}"},
            {"role": "user", "content": text},
        ],
    }


# what the first stub answered (its _answer), kept here so a change to them cannot go unseen
GOLDEN = [
    (
        "hello world",
        '{"score": 0.7238335445811585}',
        '{"items": ["fact 0: hello world"]}',
    ),
    (
        "The meeting moved to Thursday at 10",
        '{"score": 0.9232221362002245}',
        '{"items": ["fact 0: The to 10", "fact 1: meeting Thursday", "fact 2: moved at"]}',
    ),
    ("", '{"score": 0.8894159949592818}', '{"items": ["fact 0: (empty)", "fact 1: ", "fact 2: "]}'),
]


@pytest.mark.parametrize(("text", "score", "items"), GOLDEN)
def test_the_reference_pipeline_gets_exactly_the_answers_it_always_got(
    text: str, score: str, items: str
) -> None:
    scored = answer_for(CHAT, _pipeline_body("score", text))
    extracted = answer_for(CHAT, _pipeline_body("extract", text))
    assert (scored.content, scored.rule) == (score, "reference-score")
    assert (extracted.content, extracted.rule) == (items, "reference-extract")
    assert json.loads(score)["score"] == expected_score(text)
    assert json.loads(items)["items"] == expected_knowledge(text)


def test_the_old_entry_point_still_exports_the_reference_answers() -> None:
    from chaos_model import llm_stub

    assert llm_stub.expected_score is expected_score
    assert llm_stub.expected_knowledge is expected_knowledge


def test_the_reference_rules_read_the_system_prompt_alone() -> None:
    body = _pipeline_body("score", "please extract this")
    assert answer_for(CHAT, body).rule == "reference-score"
    body["messages"][0]["content"] = "You are a helpful assistant."
    plain = answer_for(CHAT, body)
    assert plain.rule == "text" and set(plain.value) == {"answer"}  # JSON mode: still JSON


class Fact(BaseModel):
    subject: str
    confidence: float = Field(ge=0, le=1)


class Extraction(BaseModel):
    facts: list[Fact] = Field(min_length=1, max_length=5)
    language: Literal["en", "de", "fr"]
    summary: str | None = None
    tags: set[str] = Field(default_factory=set)
    counts: dict[str, int] = Field(default_factory=dict)
    postcode: str = Field(pattern=r"^\d{5}$")


class Tree(BaseModel):
    label: str
    children: list[Tree] = Field(default_factory=list)


SCHEMAS: list[dict[str, Any]] = [
    Extraction.model_json_schema(),
    Tree.model_json_schema(),
    {  # an OpenAI strict schema: every field required, optional ones nullable
        "type": "object",
        "additionalProperties": False,
        "required": ["when", "who", "id", "note", "rating", "site"],
        "properties": {
            "when": {"type": "string", "format": "date-time"},
            "who": {"type": "string", "format": "email"},
            "id": {"type": "string", "format": "uuid"},
            "note": {"type": ["string", "null"], "maxLength": 8},
            "rating": {"type": "integer", "exclusiveMinimum": 0, "maximum": 5, "multipleOf": 1},
            "site": {"type": "string", "format": "uri"},
        },
    },
    {"type": "array", "items": {"enum": [1, 2, 3]}, "minItems": 3, "uniqueItems": True},
    {"allOf": [{"properties": {"a": {"const": 1}}, "required": ["a"]}, {"required": ["b"]}]},
    {"type": "number", "exclusiveMinimum": 10, "exclusiveMaximum": 11},
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda schema: str(schema)[:40])
def test_a_structured_answer_is_a_valid_instance_and_the_same_for_the_same_seed(
    schema: dict[str, Any],
) -> None:
    text = "the quick brown fox jumps over the lazy dog"
    answers = [instance(schema, seed, text) for seed in range(20)]
    for answer in answers:
        jsonschema.validate(answer, schema, format_checker=jsonschema.FormatChecker())
    assert answers == [instance(schema, seed, text) for seed in range(20)]


def test_list_items_are_distinct_even_from_a_one_word_prompt() -> None:
    schema = {"type": "array", "items": {"type": "string"}, "minItems": 5, "maxItems": 5}
    for seed in range(20):
        items = instance(schema, seed, "sweep")
        assert len(set(items)) == 5, items


def test_seeds_give_different_answers() -> None:
    schema = Extraction.model_json_schema()
    assert len({json.dumps(instance(schema, seed, "a b c d e f")) for seed in range(20)}) > 10


@settings(max_examples=50, deadline=None)
@given(text=st.text())
def test_strings_are_tame_whatever_the_prompt(text: str) -> None:
    """Words of the prompt, never control characters: a database stores them as they are."""
    answer = instance(Tree.model_json_schema(), 1, text)
    labels = json.dumps(answer, ensure_ascii=False)
    assert not any(ord(ch) < 0x20 for ch in labels.replace("\\n", ""))
    assert answer["label"].strip()


def test_a_schema_no_instance_can_be_made_of_is_a_clear_error() -> None:
    with pytest.raises(CannotAnswer, match="give the call a rule with a fixed json answer"):
        instance({"type": "string", "not": {"type": "string"}}, 0)
    with pytest.raises(CannotAnswer, match="not a valid JSON schema"):
        instance({"type": "strin"}, 0)


def test_answers_are_the_same_in_another_process() -> None:
    """The oracle recomputes in its own process, with other modules loaded."""
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Anna moved to Berlin in 2021"}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": Extraction.model_json_schema()},
        },
    }
    script = textwrap.dedent(
        f"""
        import json, sys
        from chaos_model.llm import answer_for
        print(json.dumps(answer_for("{CHAT}", json.loads(sys.stdin.read())).value))
        """
    )
    other = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(body),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(other.stdout) == answer_for(CHAT, body).value


def _tools_body(choice: Any = None, called: str = "") -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Anna lives in Berlin"}]
    if called:
        call = {"id": "c1", "type": "function", "function": {"name": called, "arguments": "{}"}}
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": "c1", "content": "done"})
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": messages,
        "tools": [
            {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}},
            {
                "type": "function",
                "function": {"name": "final_result", "parameters": Fact.model_json_schema()},
            },
        ],
    }
    if choice is not None:
        body["tool_choice"] = choice
    return body


def test_which_tool_is_called() -> None:
    assert answer_for(CHAT, _tools_body()).tool is None  # auto: the model answers in text
    forced = {"type": "function", "function": {"name": "final_result"}}
    answer = answer_for(CHAT, _tools_body(forced))
    assert answer.tool == "final_result"
    Fact.model_validate(answer.value)
    assert answer_for(CHAT, _tools_body("required")).tool == "lookup"
    assert answer_for(CHAT, _tools_body("required", called="lookup")).tool == "final_result"
    assert answer_for(CHAT, _tools_body("none")).tool is None


def test_the_adapters_rules_come_first_and_match_on_what_they_name() -> None:
    spec = LLMSpec(
        rules=(
            AnswerRule(name="look-it-up", tool="lookup", json={"q": "Anna"}),
            AnswerRule(name="mini", model="gpt-4o-mini*", prompt="(?i)berlin", text="Berlin!"),
            AnswerRule(name="claude-only", provider="anthropic", text="never for openai"),
        )
    )
    first = answer_for(CHAT, _tools_body(), spec)
    assert (first.rule, first.tool, first.value) == ("look-it-up", "lookup", {"q": "Anna"})
    after = answer_for(CHAT, _tools_body(called="lookup"), spec)  # a tool is called once
    assert (after.rule, after.value) == ("mini", "Berlin!")
    forced = {"type": "function", "function": {"name": "final_result"}}
    assert answer_for(CHAT, _tools_body(forced), spec).rule == "schema"
    other = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Berlin"}]}
    assert answer_for(CHAT, other, spec).rule == "text"


def test_a_bad_request_is_named() -> None:
    with pytest.raises(BadRequest, match="missing required parameter: 'messages'"):
        answer_for(CHAT, {"model": "m"})
    with pytest.raises(BadRequest, match="not in tools"):
        answer_for(CHAT, _tools_body({"type": "function", "function": {"name": "nope"}}))
    with pytest.raises(BadRequest, match="max_tokens"):
        answer_for("/v1/messages", {"model": "m", "messages": []})


def test_the_message_key_comes_from_where_the_adapter_says() -> None:
    ask = parse_chat(CHAT, {**_pipeline_body("score", "id=42 hello")})
    assert message_key(ask, {}, LLMSpec()) == "message-7"
    header = LLMSpec(key="header", key_header="X-Message-Id")
    assert message_key(ask, {"x-message-id": "m-1"}, header) == "m-1"
    assert message_key(ask, {}, header) == "message-7"  # no header: the user field
    prompt = LLMSpec(key="prompt", key_pattern=r"id=(\d+)")
    assert message_key(ask, {}, prompt) == "42"
    anonymous = parse_chat(CHAT, {"model": "m", "messages": []})
    assert message_key(anonymous, {}, LLMSpec()) == "anonymous"


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"mode": "explode"}, "'mode' must be one of rate_limit, error"),
        ({"mode": "error", "status": 418}, "'status' must be one of (500, 502, 503)"),
        ({"mode": "error", "calls": 1.5}, "'calls' must be a whole number"),
        ({"mode": "slow", "delay": "soon"}, "'delay' must be a number"),
        ({"mode": "slow", "colour": "red"}, "unknown field 'colour'"),
        ({"mode": "refusal", "provider": "gemini"}, "'provider' must be one of"),
    ],
)
def test_a_bad_fault_is_named(spec: dict[str, Any], problem: str) -> None:
    with pytest.raises(FaultSpecError) as raised:
        fault_from_spec(spec)
    assert problem in str(raised.value)


def test_the_first_fault_json_still_reads() -> None:
    fault = fault_from_spec(
        {"mode": "rate_limit", "seconds": None, "calls": 2, "retry_after": 0.5, "delay": 0.5}
    )
    assert (fault.mode, fault.calls, fault.until, fault.retry_after) == ("rate_limit", 2, None, 0.5)
