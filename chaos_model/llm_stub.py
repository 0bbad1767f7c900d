"""The LLM stub's entry point: ``python -m chaos_model.llm_stub --port N [--host H]
[--config PATH | --target ADAPTER]``.

It speaks OpenAI's (``/v1/chat/completions``, ``/v1/embeddings``), Anthropic's
(``/v1/messages``) and Ollama's (``/api/chat``, ``/api/generate``, ``/api/embeddings``,
``/api/embed``) wire formats; see :mod:`chaos_model.llm`. Its control API:

``POST /control/fault`` ``{"mode": "rate_limit"|"error"|"slow"|"hang"|"malformed"|"overloaded"|
"slow_first_token"|"cut"|"malformed_tool_call"|"refusal", "calls": N | null, "seconds": S | null,
"retry_after": 1.0, "delay": 0.5, "status": 500, "model": GLOB, "tool": NAME, "provider": P}``
makes the next N matching calls, or every matching call for S seconds (or, with neither, until
cleared) fail that way. ``DELETE /control/fault`` clears it and releases hung calls;
``POST /control/reset`` also zeroes the counters and drops the records; ``GET /control/stats``
gives calls per message key, calls in flight and the fault; ``GET /control/records[?key=K]``
what each call asked and got; ``GET``/``POST /control/config`` the answer rules and the message
key (the JSON of an adapter's ``[llm]`` section).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from chaos_model.adapter import LLMSpec, llm_spec_from_json, load_adapter
from chaos_model.errors import AdapterError
from chaos_model.llm import MODES, expected_knowledge, expected_score
from chaos_model.llm._app import build_app

__all__ = ["MODES", "build_app", "expected_knowledge", "expected_score", "main", "read_spec"]


def read_spec(config: str | None, target: str | None) -> LLMSpec:
    """The answer rules and message key from a JSON file, or from an adapter's ``[llm]``."""
    if target:
        return load_adapter(target).llm
    if not config:
        return LLMSpec()
    try:
        data = json.loads(Path(config).read_text())
    except OSError as error:
        raise AdapterError(f"{config}: cannot read the stub's config: {error.strerror}") from None
    except ValueError as error:
        raise AdapterError(f"{config}: not valid JSON: {error}") from None
    return llm_spec_from_json(data, config)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="A fake LLM provider with fault control")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", help="JSON file of answer rules and message key")
    source.add_argument("--target", help="adapter file whose [llm] section to use")
    args = parser.parse_args()
    try:
        spec = read_spec(args.config, args.target)
    except AdapterError as error:
        parser.error(str(error))
    uvicorn.run(
        build_app(spec), host=args.host, port=args.port, log_level="warning", lifespan="off"
    )


if __name__ == "__main__":
    main()
