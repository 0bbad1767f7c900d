"""Deterministic instances of a JSON schema: the stub's structured answers.

:func:`instance` walks the schema with a :class:`random.Random` seeded by the caller (a hash of
the request), so the same request always gets the same answer, in this process or in the
oracle's. Values are tame, as a model's would be: strings are words of the prompt, numbers sit
inside their bounds, lists are short and their items distinct; a string with a ``pattern`` is
drawn by Hypothesis's ``from_regex`` from the same seed. Every instance is checked with
``jsonschema`` (validators are cached per schema); a schema the walk cannot satisfy (a ``not``,
an ``if``, a remote ``$ref``) raises :class:`CannotAnswer`, and a fixed answer rule is the way
out. (hypothesis-jsonschema 0.23 would cover more, but it calls a Hypothesis internal that
current Hypothesis no longer has, and draws adversarial strings no model would write.)
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from random import Random
from typing import Any

from jsonschema import FormatChecker
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

#: deeper than this, the walk takes the shortest way out (no optional fields, fewest items)
MAX_DEPTH = 6
#: walks (with the next seeds) before giving up on a schema whose instances rarely validate
TRIES = 5
FALLBACK_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")
_WORD = re.compile(r"\w[\w'-]*")


class CannotAnswer(Exception):
    """No instance of the schema could be made: the schema is invalid or unsatisfiable."""


def instance(schema: Any, seed: int, text: str = "") -> Any:
    """An instance of ``schema``, the same for the same ``seed`` and ``text`` (the prompt,
    whose words become the strings)."""
    key = json.dumps(schema, sort_keys=True, separators=(",", ":"))
    validator = _validator(key)
    words = tuple(_WORD.findall(text)[:200]) or FALLBACK_WORDS
    problem = "the walk's instance does not validate"
    for attempt in range(TRIES):
        try:
            walked = _Walk(schema, Random(seed + attempt), words).value(schema, 0)
        except _Unsupported as unsupported:
            problem = str(unsupported)
            break
        if validator.is_valid(walked):
            return walked
    raise CannotAnswer(
        f"cannot make an instance of the schema ({problem}); give the call a rule with a fixed"
        f" json answer: {key[:160]}"
    )


@lru_cache(maxsize=512)
def _validator(key: str) -> Validator:
    schema = json.loads(key)
    cls = validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as error:
        raise CannotAnswer(f"not a valid JSON schema: {error.message}") from None
    return cls(schema, format_checker=FormatChecker())


class _Unsupported(Exception):
    pass


#: constraints the anthropic SDK moves out of a schema into its description, as
#: ``{minimum: 1, maximum: 10}``: a model reads them there, and so does the walk
_HINTED = frozenset(
    {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
    | {"minLength", "maxLength", "minItems", "maxItems"}
)
_HINTS = re.compile(r"\{((?:\w+: -?[\d.]+(?:, )?)+)\}$")


def _with_hints(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    description = schema.get("description")
    if not isinstance(description, str):
        return schema
    found = _HINTS.search(description)
    if found is None:
        return schema
    hints: dict[str, Any] = {}
    for pair in found.group(1).split(", "):
        key, _, value = pair.partition(": ")
        if key in _HINTED and key not in schema:
            hints[key] = float(value) if "." in value else int(value)
    return {**schema, **hints} if hints else schema


class _Walk:
    def __init__(self, root: Any, rng: Random, words: Sequence[str]) -> None:
        self.root = root
        self.rng = rng
        self.words = words

    def value(self, schema: Any, depth: int) -> Any:
        if schema is True or schema == {}:
            return self.string({}, depth)
        if not isinstance(schema, Mapping):
            raise _Unsupported("false or not a schema")
        schema = _with_hints(self.resolve(schema, depth))
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self.rng.choice(list(schema["enum"]))
        for key in ("anyOf", "oneOf"):
            if key in schema:
                rest = {k: v for k, v in schema.items() if k != key}
                branch = self.pick_branch(schema[key], depth)
                return self.value({**rest, **self.resolve(branch, depth)}, depth + 1)
        kind = self.kind(schema)
        make: Callable[[Mapping[str, Any], int], Any] = getattr(self, kind)
        return make(schema, depth)

    def resolve(self, schema: Mapping[str, Any], depth: int) -> Mapping[str, Any]:
        if depth > 4 * MAX_DEPTH:
            raise _Unsupported("references nest too deep")
        if "$ref" in schema:
            target = self.pointer(schema["$ref"])
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**self.resolve(target, depth + 1), **rest} if rest else target
            return self.resolve(schema, depth + 1) if "$ref" in schema else schema
        if "allOf" in schema:
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                for key, value in self.resolve(part, depth + 1).items():
                    if key == "properties":
                        merged["properties"] = {**merged.get("properties", {}), **value}
                    elif key == "required":
                        merged["required"] = [*merged.get("required", []), *value]
                    else:
                        merged.setdefault(key, value)
            return self.resolve(merged, depth + 1)
        return schema

    def pointer(self, ref: str) -> Any:
        if not ref.startswith("#"):
            raise _Unsupported(f"remote reference {ref}")
        node = self.root
        for part in filter(None, ref[1:].split("/")):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or part not in node:
                raise _Unsupported(f"unresolvable reference {ref}")
            node = node[part]
        return node

    def pick_branch(self, branches: Sequence[Any], depth: int) -> Any:
        usable = [b for b in branches if not (isinstance(b, Mapping) and b.get("type") == "null")]
        if not usable:
            return branches[0]
        if depth >= MAX_DEPTH:
            flat = [b for b in usable if isinstance(b, Mapping) and "$ref" not in b]
            usable = flat or usable
        return self.rng.choice(usable)

    def kind(self, schema: Mapping[str, Any]) -> str:
        declared = schema.get("type")
        if isinstance(declared, list):
            usable = [t for t in declared if t != "null"] or declared
            declared = self.rng.choice(usable)
        if isinstance(declared, str):
            if declared not in ("object", "array", "string", "integer", "number", "boolean"):
                return "null"
            return declared
        if "properties" in schema or "additionalProperties" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        if "minimum" in schema or "maximum" in schema:
            return "number"
        return "string"

    def null(self, schema: Mapping[str, Any], depth: int) -> None:
        return None

    def boolean(self, schema: Mapping[str, Any], depth: int) -> bool:
        return self.rng.random() < 0.5

    def object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties: Mapping[str, Any] = schema.get("properties", {})
        required = [name for name in schema.get("required", []) if name in properties]
        optional = [name for name in properties if name not in required]
        wanted = int(schema.get("minProperties", 0))
        chosen = list(required)
        for name in optional:
            if len(chosen) < wanted or (depth < MAX_DEPTH and self.rng.random() < 0.5):
                chosen.append(name)
        most = schema.get("maxProperties")
        if most is not None:
            chosen = chosen[: max(int(most), len(required))]
        out = {name: self.value(properties[name], depth + 1) for name in chosen}
        for name in schema.get("required", []):
            if name not in out:
                out[name] = self.string({}, depth)
        extra = schema.get("additionalProperties", True)
        if not properties and isinstance(extra, Mapping) and extra:
            wanted = max(wanted, 1 if depth >= MAX_DEPTH else self.rng.randint(1, 3))
        if len(out) < wanted and extra is not False:
            for word in self.distinct_words():
                if len(out) >= wanted:
                    break
                out.setdefault(word, self.value(extra, depth + 1))
        return out

    def array(self, schema: Mapping[str, Any], depth: int) -> list[Any]:
        prefix = list(schema.get("prefixItems", []))
        items = schema.get("items", True)
        least = max(int(schema.get("minItems", 0)), 0)
        most = schema.get("maxItems")
        count = least if depth >= MAX_DEPTH else max(least, self.rng.randint(1, 3))
        if most is not None:
            count = min(count, int(most))
        if items is False:
            count = min(count, len(prefix))
        out: list[Any] = []
        seen: set[str] = set()
        for index in range(count):
            item_schema = prefix[index] if index < len(prefix) else items
            for _ in range(10):  # distinct items, as a model would list them
                item = self.value(item_schema, depth + 1)
                if json.dumps(item, sort_keys=True) not in seen:
                    break
            else:
                if isinstance(item, str):  # a prompt of few words: number the repeat
                    item = f"{item} {index + 1}"
            seen.add(json.dumps(item, sort_keys=True))
            out.append(item)
        return out

    def string(self, schema: Mapping[str, Any], depth: int) -> str:
        if "pattern" in schema:
            from chaos_model.llm._patterns import NoString, pattern_string

            try:
                return pattern_string(str(schema["pattern"]), self.rng.getrandbits(64))
            except NoString as error:
                raise _Unsupported(str(error)) from None
        made = self.formatted(str(schema.get("format", "")))
        if made is None:
            made = " ".join(self.rng.choice(self.words) for _ in range(self.rng.randint(1, 4)))
        least = int(schema.get("minLength", 1 if "format" not in schema else 0))
        while len(made) < least:
            made = f"{made} {self.rng.choice(self.words)}".strip()
        most = schema.get("maxLength")
        if most is not None:
            made = made[: int(most)]
        return made

    def formatted(self, name: str) -> str | None:
        rng = self.rng
        word = re.sub(r"[^a-z0-9]", "", self.rng.choice(self.words).lower()) or "user"
        day = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        clock = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
        made = {
            "date-time": f"{day}T{clock}Z",
            "date": day,
            "time": f"{clock}Z",
            "email": f"{word}@example.com",
            "idn-email": f"{word}@example.com",
            "uri": f"https://example.com/{word}",
            "iri": f"https://example.com/{word}",
            "url": f"https://example.com/{word}",
            "uri-reference": f"/{word}",
            "hostname": f"{word}.example.com",
            "ipv4": f"192.0.2.{rng.randint(1, 254)}",
            "ipv6": f"2001:db8::{rng.randint(1, 0xFFFF):x}",
            "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "duration": f"P{rng.randint(1, 30)}D",
        }
        return made.get(name)

    def distinct_words(self) -> list[str]:
        words = list(dict.fromkeys(self.words))
        return words + [f"{words[0]}_{n}" for n in range(2, 64)]

    def integer(self, schema: Mapping[str, Any], depth: int) -> int:
        low, high = self.bounds(schema, integral=True)
        step = schema.get("multipleOf", 1)
        if not isinstance(step, int) or step <= 0:
            raise _Unsupported("a fractional multipleOf on an integer")
        first, last = math.ceil(low / step), math.floor(high / step)
        if first > last:
            raise _Unsupported("no multiple in range")
        return int(self.rng.randint(int(first), int(last)) * step)

    def number(self, schema: Mapping[str, Any], depth: int) -> float:
        low, high = self.bounds(schema, integral=False)
        step = schema.get("multipleOf")
        if step is not None:
            first, last = math.ceil(low / step), math.floor(high / step)
            if first > last:
                raise _Unsupported("no multiple in range")
            return float(self.rng.randint(int(first), int(last)) * step)
        value = round(self.rng.uniform(low, high), 4)
        return min(max(value, low), high)

    def bounds(self, schema: Mapping[str, Any], *, integral: bool) -> tuple[float, float]:
        nudge = 1 if integral else 1e-4
        low: float | None = schema.get("minimum")
        high: float | None = schema.get("maximum")
        if "exclusiveMinimum" in schema and not isinstance(schema["exclusiveMinimum"], bool):
            low = schema["exclusiveMinimum"] + nudge
        if "exclusiveMaximum" in schema and not isinstance(schema["exclusiveMaximum"], bool):
            high = schema["exclusiveMaximum"] - nudge
        span = 100 if integral else 1
        if low is None:
            low = 0 if high is None else high - span
        if high is None:
            high = low + span
        if low > high:
            raise _Unsupported("empty range")
        return low, high
