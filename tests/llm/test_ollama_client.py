"""The ollama client against the stub's Ollama API: chat, generate, structured output through
``format``, tool calls, embeddings, and errors as ``ResponseError``."""

from __future__ import annotations

import json

import ollama
import pytest
from conftest import Stub
from pydantic import BaseModel, Field

from chaos_model.llm import embedding


class Recipe(BaseModel):
    title: str
    minutes: int = Field(ge=1, le=240)
    steps: list[str] = Field(min_length=1)


def _client(stub: Stub) -> ollama.Client:
    return ollama.Client(host=stub.url)


def test_chat_with_a_format_schema_answers_an_instance(stub: Stub) -> None:
    response = _client(stub).chat(
        model="llama3.2",
        messages=[{"role": "user", "content": "A quick bread recipe"}],
        format=Recipe.model_json_schema(),
        stream=False,
    )
    recipe = Recipe.model_validate_json(response.message.content or "")
    assert response.done and response.done_reason == "stop" and response.eval_count
    (record,) = stub.records()
    assert (record["provider"], record["endpoint"]) == ("ollama", "/api/chat")
    assert record["answer"] == recipe.model_dump()


def test_a_streamed_chat_adds_up_to_the_whole_answer(stub: Stub) -> None:
    messages = [{"role": "user", "content": "Tell me about rye"}]
    whole = _client(stub).chat(model="llama3.2", messages=messages, stream=False)
    parts = list(_client(stub).chat(model="llama3.2", messages=messages, stream=True))
    assert "".join(part.message.content or "" for part in parts) == whole.message.content
    assert parts[-1].done and not parts[0].done


def test_generate_and_json_mode(stub: Stub) -> None:
    generated = _client(stub).generate(model="llama3.2", prompt="Why is rye sour?", format="json")
    assert isinstance(json.loads(generated.response), dict) and generated.context


def test_an_offered_tool_is_called_when_a_rule_says_so(stub: Stub) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    response = _client(stub).chat(
        model="llama3.2", messages=[{"role": "user", "content": "Weather?"}], tools=[tool]
    )
    (call,) = response.message.tool_calls or []
    assert (call.function.name, dict(call.function.arguments)) == (
        "get_weather",
        {"city": "Berlin"},
    )


def test_embeddings_old_and_new(stub: Stub) -> None:
    single = _client(stub).embeddings(model="nomic-embed-text", prompt="rye")
    assert list(single.embedding) == embedding("nomic-embed-text", "rye", 768)
    batch = _client(stub).embed(model="nomic-embed-text", input=["rye", "wheat"])
    assert len(batch.embeddings) == 2 and list(batch.embeddings[0]) == list(single.embedding)


@pytest.mark.parametrize(("mode", "status"), [("overloaded", 503), ("rate_limit", 429)])
def test_errors_are_response_errors(stub: Stub, mode: str, status: int) -> None:
    stub.fault(mode, calls=1)
    with pytest.raises(ollama.ResponseError) as raised:
        _client(stub).chat(model="llama3.2", messages=[{"role": "user", "content": "x"}])
    assert raised.value.status_code == status
