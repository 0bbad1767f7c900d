"""Agent frameworks against the stub: pydantic-ai (OpenAI and Anthropic models) and
langchain-openai, each getting a valid structured answer, and each failure as it reports it."""

from __future__ import annotations

import anthropic
import openai
import pytest
from conftest import Stub
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field
from pydantic_ai import Agent
from pydantic_ai.exceptions import ModelHTTPError, UnexpectedModelBehavior
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.openai import OpenAIProvider


class Contact(BaseModel):
    name: str = Field(min_length=1)
    visits: int = Field(ge=0, le=10)
    tags: list[str] = Field(default_factory=list, max_length=3)


PROMPT = "Anna from Berlin came by twice; she likes rye bread."


def _openai_agent(stub: Stub, retries: int = 0) -> Agent[None, Contact]:
    client = openai.AsyncOpenAI(base_url=f"{stub.url}/v1", api_key="test", max_retries=retries)
    model = OpenAIChatModel("gpt-4o", provider=OpenAIProvider(openai_client=client))
    return Agent(model, output_type=Contact)


def _anthropic_agent(stub: Stub, retries: int = 0) -> Agent[None, Contact]:
    client = anthropic.AsyncAnthropic(base_url=stub.url, api_key="test", max_retries=retries)
    model = AnthropicModel("claude-sonnet-4-5", provider=AnthropicProvider(anthropic_client=client))
    return Agent(model, output_type=Contact)


@pytest.mark.parametrize("make", [_openai_agent, _anthropic_agent], ids=["openai", "anthropic"])
def test_pydantic_ai_gets_a_valid_structured_output(stub: Stub, make: type) -> None:
    result = make(stub).run_sync(PROMPT)
    assert isinstance(result.output, Contact)
    (record,) = stub.records()
    assert record["rule"] == "schema" and record["tool"] == "final_result"
    assert Contact.model_validate(record["answer"]) == result.output


def test_pydantic_ai_sees_a_rate_limit_as_a_429(stub: Stub) -> None:
    stub.fault("rate_limit", calls=1, retry_after=0.2)
    with pytest.raises(ModelHTTPError) as raised:
        _openai_agent(stub).run_sync(PROMPT)
    assert raised.value.status_code == 429


def test_pydantic_ai_succeeds_through_the_sdks_retries(stub: Stub) -> None:
    stub.fault("overloaded", calls=1, provider="anthropic")
    assert isinstance(_anthropic_agent(stub, retries=1).run_sync(PROMPT).output, Contact)
    assert [record["status"] for record in stub.records()] == [529, 200]


def test_pydantic_ai_gives_up_on_broken_tool_calls(stub: Stub) -> None:
    stub.fault("malformed_tool_call", tool="final_result")
    with pytest.raises(UnexpectedModelBehavior, match="output retries"):
        _openai_agent(stub).run_sync(PROMPT)
    assert all(record["fault"] == "malformed_tool_call" for record in stub.records())


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_langchain_gets_a_valid_structured_output(stub: Stub, method: str) -> None:
    llm = ChatOpenAI(model="gpt-4o-mini", base_url=f"{stub.url}/v1", api_key="test")
    contact = llm.with_structured_output(Contact, method=method).invoke(PROMPT)
    assert isinstance(contact, Contact)
    (record,) = stub.records()
    assert Contact.model_validate(record["answer"]) == contact


def test_langchain_sees_the_sdks_rate_limit_error(stub: Stub) -> None:
    stub.fault("rate_limit", calls=1)
    llm = ChatOpenAI(model="gpt-4o-mini", base_url=f"{stub.url}/v1", api_key="test", max_retries=0)
    with pytest.raises(openai.RateLimitError):
        llm.with_structured_output(Contact).invoke(PROMPT)
