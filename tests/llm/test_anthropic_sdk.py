"""The anthropic SDK against the stub: tool_use answers, structured output, streams; its
rate-limit and overload errors with Anthropic's headers, and its retries."""

from __future__ import annotations

import time

import anthropic
import httpx2
import pytest
from conftest import Stub
from pydantic import BaseModel, Field


class Contact(BaseModel):
    name: str
    city: str
    visits: int = Field(ge=0, le=10)


TOOL = {"name": "save_contact", "input_schema": Contact.model_json_schema()}
MESSAGES = [{"role": "user", "content": "Anna from Berlin came by twice."}]


def _client(stub: Stub, **options: object) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stub.url, api_key="test", **options)


def test_a_forced_tool_is_answered_with_tool_use(stub: Stub) -> None:
    message = _client(stub).messages.create(
        model="claude-sonnet-4-5",
        max_tokens=256,
        messages=MESSAGES,
        tools=[TOOL],
        tool_choice={"type": "tool", "name": "save_contact"},
        metadata={"user_id": "message-9"},
    )
    (block,) = message.content
    assert block.type == "tool_use" and block.name == "save_contact"
    assert block.id.startswith("toolu_") and message.id.startswith("msg_")
    contact = Contact.model_validate(block.input)
    assert message.stop_reason == "tool_use" and message.usage.output_tokens > 0
    (record,) = stub.records("message-9")
    assert (record["provider"], record["tool"]) == ("anthropic", "save_contact")
    assert record["answer"] == contact.model_dump()


def test_structured_output_is_parsed(stub: Stub) -> None:
    message = _client(stub).messages.parse(
        model="claude-sonnet-4-5",
        max_tokens=256,
        messages=MESSAGES,
        output_format=Contact,
    )
    assert isinstance(message.parsed_output, Contact)
    assert message.stop_reason == "end_turn"


def test_a_streamed_tool_call_accumulates_to_the_same_input(stub: Stub) -> None:
    request = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "messages": MESSAGES,
        "tools": [TOOL],
        "tool_choice": {"type": "any"},
    }
    whole = _client(stub).messages.create(**request)
    with _client(stub).messages.stream(**request) as stream:
        streamed = stream.get_final_message()
    assert streamed.content[0].input == whole.content[0].input
    assert streamed.stop_reason == "tool_use"


def test_a_text_stream(stub: Stub) -> None:
    with _client(stub).messages.stream(
        model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "say hello"}]
    ) as stream:
        text = "".join(stream.text_stream)
    assert text == "Hello!"  # the adapter's rule for this prompt


def test_a_rate_limit_carries_anthropics_headers_and_is_retried(stub: Stub) -> None:
    stub.fault("rate_limit", calls=1, retry_after=0.3)
    with pytest.raises(anthropic.RateLimitError) as raised:
        _client(stub, max_retries=0).messages.create(
            model="m",
            max_tokens=16,
            messages=MESSAGES,
        )
    headers = raised.value.response.headers
    assert headers["retry-after"] == "0.3"
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    assert raised.value.type == "rate_limit_error" and raised.value.request_id
    stub.reset()  # the call above was told to wait: start afresh
    stub.fault("rate_limit", calls=1, retry_after=0.3)
    began = time.monotonic()
    _client(stub, max_retries=1).messages.create(model="m", max_tokens=16, messages=MESSAGES)
    assert time.monotonic() - began >= 0.3
    assert [r["status"] for r in stub.records()] == [429, 200]
    assert not any(record["before_retry_after"] for record in stub.records())


def test_overloaded_is_529_overloaded_error(stub: Stub) -> None:
    stub.fault("overloaded", calls=3)
    with pytest.raises(anthropic.OverloadedError) as raised:
        _client(stub, max_retries=2).messages.create(
            model="m",
            max_tokens=16,
            messages=MESSAGES,
        )
    assert raised.value.status_code == 529 and raised.value.type == "overloaded_error"
    assert [record["status"] for record in stub.records()] == [529, 529, 529]


def test_a_service_unavailable_is_its_own_error(stub: Stub) -> None:
    stub.fault("error", calls=1, status=503)
    with pytest.raises(anthropic.ServiceUnavailableError):
        _client(stub, max_retries=0).messages.create(model="m", max_tokens=16, messages=MESSAGES)


def test_a_cut_stream_ends_in_a_protocol_error(stub: Stub) -> None:
    stub.fault("cut", calls=1)
    with (
        pytest.raises(httpx2.RemoteProtocolError, match="incomplete chunked read"),
        _client(stub, max_retries=0).messages.stream(
            model="m",
            max_tokens=16,
            messages=MESSAGES,
        ) as stream,
    ):
        stream.get_final_message()


def test_malformed_tool_json_in_a_stream_cannot_be_parsed(stub: Stub) -> None:
    stub.fault("malformed_tool_call", calls=1)
    with (
        pytest.raises(ValueError, match="Unable to parse tool parameter JSON"),
        _client(stub).messages.stream(
            model="m",
            max_tokens=16,
            messages=MESSAGES,
            tools=[TOOL],
            tool_choice={"type": "any"},
        ) as stream,
    ):
        stream.get_final_message()


def test_a_refusal_stops_with_refusal(stub: Stub) -> None:
    stub.fault("refusal", calls=1)
    message = _client(stub).messages.create(model="m", max_tokens=16, messages=MESSAGES)
    assert message.stop_reason == "refusal"


def test_a_bad_request_is_a_bad_request_error(stub: Stub) -> None:
    with pytest.raises(anthropic.BadRequestError, match="no tool named 'nope'"):
        _client(stub).messages.create(
            model="m",
            max_tokens=16,
            messages=MESSAGES,
            tools=[TOOL],
            tool_choice={"type": "tool", "name": "nope"},
        )
