"""The openai SDK against the stub: parsed structured answers, tool calls, streams and
embeddings; each failure as the SDK reports it, and its retries honouring the headers."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from conftest import Stub
from pydantic import BaseModel, Field

from chaos_model.llm import embedding


class Fact(BaseModel):
    subject: str
    confidence: float = Field(ge=0, le=1)


class Extraction(BaseModel):
    facts: list[Fact] = Field(min_length=1, max_length=4)
    language: str


MESSAGES = [
    {"role": "system", "content": "Extract the facts."},
    {"role": "user", "content": "Anna moved to Berlin in 2021 and works at a bakery."},
]


def _client(stub: Stub, **options: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stub.url}/v1", api_key="test", **options)


def test_a_json_schema_response_format_is_parsed(stub: Stub) -> None:
    completion = _client(stub).chat.completions.parse(
        model="gpt-4o-mini", messages=MESSAGES, response_format=Extraction, user="message-1"
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and isinstance(choice.message.parsed, Extraction)
    assert completion.id.startswith("chatcmpl-") and completion.model == "gpt-4o-mini"
    usage = completion.usage
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    (record,) = stub.records("message-1")
    assert (record["provider"], record["rule"], record["status"]) == ("openai", "schema", 200)
    assert record["answer"] == choice.message.parsed.model_dump()
    assert record["requested_at"] <= record["answered_at"]


def test_the_same_request_gets_the_same_answer(stub: Stub) -> None:
    client = _client(stub)
    answers = [
        client.chat.completions.parse(
            model="gpt-4o-mini", messages=MESSAGES, response_format=Extraction
        )
        .choices[0]
        .message.parsed
        for _ in range(2)
    ]
    assert answers[0] == answers[1]


def test_a_forced_tool_call_is_parsed(stub: Stub) -> None:
    completion = _client(stub).chat.completions.parse(
        model="gpt-4o-mini",
        messages=MESSAGES,
        tools=[openai.pydantic_function_tool(Extraction)],
        tool_choice={"type": "function", "function": {"name": "Extraction"}},
    )
    (call,) = completion.choices[0].message.tool_calls or []
    assert call.id.startswith("call_") and call.function.name == "Extraction"
    assert isinstance(call.function.parsed_arguments, Extraction)
    assert completion.choices[0].finish_reason == "stop"  # a forced call ends with stop
    (record,) = stub.records()
    assert record["tool"] == "Extraction"


def test_an_adapter_rule_makes_the_model_call_a_tool_once(stub: Stub) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    client = _client(stub)
    messages: list[dict[str, object]] = [{"role": "user", "content": "Weather?"}]
    first = client.chat.completions.create(model="m", messages=messages, tools=[tool])
    (call,) = first.choices[0].message.tool_calls or []
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.arguments == '{"city": "Berlin"}'
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    second = client.chat.completions.create(model="m", messages=messages, tools=[tool])
    assert second.choices[0].message.tool_calls is None and second.choices[0].message.content
    assert [r["rule"] for r in stub.records()] == ["weather", "text"]


def test_a_stream_carries_the_answer_and_the_usage(stub: Stub) -> None:
    with _client(stub).chat.completions.stream(
        model="gpt-4o-mini",
        messages=MESSAGES,
        response_format=Extraction,
        stream_options={"include_usage": True},
    ) as stream:
        final = stream.get_final_completion()
    assert isinstance(final.choices[0].message.parsed, Extraction)
    assert final.usage is not None and final.usage.completion_tokens > 0
    (record,) = stub.records()
    assert record["stream"] and record["answer"] == final.choices[0].message.parsed.model_dump()


def test_embeddings_come_back_base64_decoded(stub: Stub) -> None:
    client = _client(stub)
    result = client.embeddings.create(model="text-embedding-3-small", input=["one", "two"])
    assert [item.index for item in result.data] == [0, 1]
    want = embedding("text-embedding-3-small", "one", 1536)
    assert result.data[0].embedding == pytest.approx(want, abs=1e-6)
    short = client.embeddings.create(model="m", input="x", dimensions=8, encoding_format="float")
    assert len(short.data[0].embedding) == 8


def test_a_rate_limit_is_retried_after_the_servers_retry_after(stub: Stub) -> None:
    stub.fault("rate_limit", calls=2, retry_after=0.3)
    began = time.monotonic()
    completion = _client(stub, max_retries=2).chat.completions.create(
        model="m", messages=MESSAGES, user="message-2"
    )
    assert completion.choices[0].message.content
    assert time.monotonic() - began >= 0.6
    first, second, third = stub.records("message-2")
    assert [first["status"], second["status"], third["status"]] == [429, 429, 200]
    assert second["requested_at"] - first["answered_at"] >= 0.3
    assert not any(record["before_retry_after"] for record in (first, second, third))


def test_a_rate_limit_is_a_rate_limit_error_with_openais_headers(stub: Stub) -> None:
    stub.fault("rate_limit", calls=1, retry_after=2)
    with pytest.raises(openai.RateLimitError) as raised:
        _client(stub, max_retries=0).chat.completions.create(model="m", messages=MESSAGES)
    headers = raised.value.response.headers
    assert headers["retry-after"] == "2"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "2s"
    assert raised.value.code == "rate_limit_exceeded"


@pytest.mark.parametrize(("mode", "status"), [("error", 500), ("overloaded", 503)])
def test_server_errors_are_retried_then_raised(stub: Stub, mode: str, status: int) -> None:
    stub.fault(mode, calls=3)
    with pytest.raises(openai.InternalServerError) as raised:
        _client(stub, max_retries=2).chat.completions.create(model="m", messages=MESSAGES)
    assert raised.value.status_code == status and raised.value.type == "server_error"
    assert [record["status"] for record in stub.records()] == [status] * 3


def test_a_bad_gateway_is_the_status_the_fault_names(stub: Stub) -> None:
    stub.fault("error", calls=1, status=502)
    with pytest.raises(openai.InternalServerError, match="Error code: 502"):
        _client(stub, max_retries=0).chat.completions.create(model="m", messages=MESSAGES)


def test_a_hang_times_the_client_out(stub: Stub) -> None:
    stub.fault("hang")
    with pytest.raises(openai.APITimeoutError):
        _client(stub, max_retries=0, timeout=0.5).chat.completions.create(
            model="m", messages=MESSAGES
        )
    assert stub.stats()["in_flight"] == 1
    stub.clear()
    assert stub.records()[0]["status"] == 503  # released


def test_a_cut_stream_is_a_connection_error(stub: Stub) -> None:
    stub.fault("cut", calls=1)
    stream = _client(stub, max_retries=0).chat.completions.create(
        model="m", messages=MESSAGES, stream=True
    )
    with pytest.raises(openai.APIConnectionError):
        list(stream)
    (record,) = stub.records()
    assert record["fault"] == "cut" and record["answer"] is None


def test_a_slow_first_token_delays_the_stream_after_it_starts(stub: Stub) -> None:
    stub.fault("slow_first_token", calls=1, delay=0.5)
    stream = _client(stub).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    arrivals = [time.monotonic() for _ in stream]
    # the delay starts as the first chunk leaves the stub, a little before it is read here
    assert arrivals[1] - arrivals[0] >= 0.4


def test_a_malformed_body_fails_to_decode(stub: Stub) -> None:
    stub.fault("malformed", calls=1)
    with pytest.raises(ValueError, match="Expecting"):
        _client(stub, max_retries=0).chat.completions.create(model="m", messages=MESSAGES)


def test_a_malformed_tool_call_fails_validation(stub: Stub) -> None:
    stub.fault("malformed_tool_call", calls=1)
    with pytest.raises(ValueError, match="Invalid JSON"):
        _client(stub).chat.completions.parse(
            model="m",
            messages=MESSAGES,
            tools=[openai.pydantic_function_tool(Extraction)],
            tool_choice="required",
        )


def test_a_refusal_is_the_messages_refusal(stub: Stub) -> None:
    stub.fault("refusal", calls=1)
    completion = _client(stub).chat.completions.parse(
        model="m", messages=MESSAGES, response_format=Extraction
    )
    message = completion.choices[0].message
    assert message.parsed is None and message.refusal and message.content is None


def test_a_fault_limited_to_a_model_leaves_other_models_alone(stub: Stub) -> None:
    stub.fault("error", model="gpt-4o*", calls=1)
    client = _client(stub, max_retries=0)
    assert client.chat.completions.create(model="o3-mini", messages=MESSAGES).choices
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices


def test_a_call_that_ignores_retry_after_is_flagged(stub: Stub) -> None:
    stub.fault("rate_limit", calls=1, retry_after=5)
    body = {"model": "m", "messages": MESSAGES, "user": "message-3"}
    with httpx.Client(base_url=stub.url) as impatient:
        assert impatient.post("/v1/chat/completions", json=body).status_code == 429
        assert impatient.post("/v1/chat/completions", json=body).status_code == 200
    limited, early = stub.records("message-3")
    assert limited["retry_after"] == 5 and not limited["before_retry_after"]
    assert early["before_retry_after"]
