"""What the webhook accepts and refuses: the secret, malformed bodies, duplicates, non-messages."""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import (
    SECRET_HEADER,
    WEBHOOK_PATH,
    Api,
    assert_nothing_stored,
    assert_processed_once,
    db_fetch,
    make_update,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaos_model.stack import LocalStack

MAX_BODY = 64 * 1024


# ---------------------------------------------------------------------------- the secret
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({SECRET_HEADER: "forged-secret"}, id="forged"),
        pytest.param({}, id="missing"),
        pytest.param({SECRET_HEADER: ""}, id="empty"),
        pytest.param(None, id="secret-plus-suffix"),
    ],
)
def test_wrong_or_missing_secret_is_401_and_stores_nothing(
    pipeline: LocalStack, api: Api, headers: dict[str, str] | None
) -> None:
    if headers is None:
        headers = {SECRET_HEADER: pipeline.endpoints.webhook_secret + "x"}
    update = make_update()
    response = api.http.post(api.url + WEBHOOK_PATH, json=update, headers=headers)
    assert response.status_code == 401, response.text
    assert response.json()["ok"] is False
    assert_nothing_stored(pipeline, api)


# ---------------------------------------------------------------------------- malformed bodies
def _json_values(max_leaves: int = 10) -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def _is_object(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body), dict)
    except (ValueError, RecursionError):
        return False


def _encode(value: Any) -> bytes:
    return json.dumps(value).encode()


random_bytes = st.binary(max_size=2048).filter(lambda b: not _is_object(b))
non_json_text = (
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass"))
    | st.sampled_from(
        [
            b"",
            b"{",
            b"{'update_id': 1}",
            b'{"update_id": 1,}',
            b"update_id=1",
            b"null null",
            b'{"update_id": NaN}',
            b'{"update_id": 1, "x": Infinity}',
            b"\xff\xfe{",
            b"[1, 2",
        ]
    )
).filter(lambda b: not _is_object(b))
# JSON values that are valid JSON but not objects, including nesting deeper than any parser likes.
json_not_object = _json_values().filter(lambda v: not isinstance(v, dict)).map(
    _encode
) | st.integers(min_value=1_000, max_value=30_000).map(lambda n: b"[" * n + b"]" * n)

# (path, required): removing a required field must make the update invalid.
REQUIRED_PATHS = [
    ("update_id",),
    ("message", "message_id"),
    ("message", "date"),
    ("message", "chat"),
    ("message", "chat", "id"),
    ("message", "chat", "type"),
    ("message", "from", "id"),
    ("message", "from", "is_bot"),
    ("message", "from", "first_name"),
]
INT64 = 2**63
wrong_int = (
    st.text(max_size=10)
    | st.floats()
    | st.booleans()
    | st.none()
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
    | st.integers(min_value=INT64)
    | st.integers(max_value=-INT64 - 1)
)
wrong_str = (
    st.integers() | st.floats() | st.booleans() | st.none() | st.lists(st.text(), max_size=2)
)
WRONG_VALUES: dict[tuple[str, ...], st.SearchStrategy[Any]] = {
    ("update_id",): wrong_int | st.integers(max_value=-1),
    ("message",): st.integers() | st.text() | st.lists(st.integers(), max_size=2) | st.booleans(),
    ("message", "message_id"): wrong_int,
    ("message", "date"): wrong_int,
    ("message", "chat"): st.none() | st.integers() | st.text() | st.lists(st.text(), max_size=2),
    ("message", "chat", "id"): wrong_int,
    ("message", "chat", "type"): wrong_str,
    ("message", "from"): st.integers() | st.text() | st.lists(st.text(), max_size=2),
    ("message", "from", "id"): wrong_int,
    ("message", "from", "is_bot"): st.integers() | st.text() | st.none() | st.floats(),
    ("message", "from", "first_name"): wrong_str,
    ("message", "text"): st.integers()
    | st.booleans()
    | st.lists(st.text(), max_size=2)
    | st.text(min_size=4097, max_size=4200),
}


def _without(update: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    result = copy.deepcopy(update)
    node = result
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return result


def _with(update: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    result = copy.deepcopy(update)
    node = result
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return result


@st.composite
def _valid_updates(draw: st.DrawFn) -> dict[str, Any]:
    return make_update(
        draw(st.integers(min_value=0, max_value=2**62)),
        chat_id=draw(st.integers(min_value=-(2**62), max_value=2**62)),
        text=draw(st.text(max_size=50)),
    )


missing_fields = st.builds(_without, _valid_updates(), st.sampled_from(REQUIRED_PATHS)).map(_encode)
objects_without_update_id = st.dictionaries(
    st.text(max_size=10).filter(lambda k: k != "update_id"), _json_values(), max_size=5
).map(_encode)


@st.composite
def _wrong_types(draw: st.DrawFn) -> bytes:
    path = draw(st.sampled_from(sorted(WRONG_VALUES)))
    return _encode(_with(draw(_valid_updates()), path, draw(WRONG_VALUES[path])))


# Shapes PostgreSQL cannot store and Telegram never sends: lone surrogates, non-finite numbers.
# (NUL characters are stored as U+FFFD instead: see test_nul_characters_are_stored_replaced.)
@st.composite
def _unstorable(draw: st.DrawFn) -> bytes:
    update = draw(_valid_updates())
    poison = draw(st.sampled_from(['"\\ud800"', "1e400", "-1e400"]))
    where = draw(st.sampled_from(["text", "extra", "nested-extra"]))
    body = json.dumps(update)
    if where == "text" and poison.startswith('"'):
        update["message"]["text"] = "@@POISON@@"
        return json.dumps(update).replace('"@@POISON@@"', poison).encode()
    if where == "nested-extra":
        update["message"]["chat"]["photo"] = "@@POISON@@"
        return json.dumps(update).replace('"@@POISON@@"', poison).encode()
    return (body[:-1] + f', "extra": {poison}}}').encode()


@st.composite
def _oversized(draw: st.DrawFn) -> bytes:
    size = draw(st.integers(min_value=MAX_BODY + 1, max_value=4 * MAX_BODY))
    kind = draw(st.sampled_from(["valid-update", "padding", "junk"]))
    if kind == "junk":
        return b"x" * size
    update = draw(_valid_updates())
    if kind == "padding":
        encoded = _encode(update)
        return encoded + b" " * (size - len(encoded))
    update["padding"] = "p" * size
    return _encode(update)


malformed_bodies = st.one_of(
    random_bytes,
    non_json_text,
    json_not_object,
    missing_fields,
    objects_without_update_id,
    _wrong_types(),
    _unstorable(),
    _oversized(),
)


def _chunks(body: bytes, size: int = 8192) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_malformed_bodies_answer_4xx_with_json_and_store_nothing(
    pipeline: LocalStack, api: Api
) -> None:
    statuses: Counter[int] = Counter()

    @given(body=malformed_bodies, chunked=st.booleans())
    @settings(
        max_examples=300,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    def answers_4xx(body: bytes, chunked: bool) -> None:
        headers = {
            "content-type": "application/json",
            SECRET_HEADER: pipeline.endpoints.webhook_secret,
            # A fresh connection per example: a server error that drops the connection then
            # fails the example that caused it, not the next one.
            "connection": "close",
        }
        content: bytes | Iterator[bytes] = _chunks(body) if chunked else body
        response = api.http.post(api.url + WEBHOOK_PATH, content=content, headers=headers)
        assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["ok"] is False
        statuses[response.status_code] += 1

    answers_4xx()
    print(f"malformed bodies sent: {sum(statuses.values())}, answers: {dict(statuses)}")
    assert sum(statuses.values()) >= 300
    assert set(statuses) >= {400, 413, 422}, statuses
    assert_nothing_stored(pipeline, api)
    assert db_fetch(pipeline, "SELECT count(*) AS n FROM attempts")[0]["n"] == 0
    assert api.ready().status_code == 200


# ---------------------------------------------------------------------------- duplicates
def test_same_update_id_three_times_is_one_message(pipeline: LocalStack, api: Api) -> None:
    update = make_update(chat_id=8)
    answers = [api.post_update(update) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
    assert [a.json()["stored"] for a in answers] == [True, False, False]

    api.wait_stage([update["update_id"]], "extracted")
    assert_processed_once(pipeline, api, [update])
    assert len(api.messages()) == 1
    assert db_fetch(pipeline, "SELECT count(*) AS n FROM telegram_updates")[0]["n"] == 1
    saves = db_fetch(
        pipeline, "SELECT count(*) AS n FROM outbox WHERE task_name = 'save_telegram_message'"
    )
    assert saves[0]["n"] == 1


def test_redelivered_update_with_different_content_keeps_the_first(
    pipeline: LocalStack, api: Api
) -> None:
    first = make_update(chat_id=9, text="the first version")
    second = _with(first, ("message", "text"), "a different text, same update_id")
    assert api.post_update(first).json() == {"ok": True, "stored": True}
    assert api.post_update(second).json() == {"ok": True, "stored": False}
    [message] = api.wait_stage([first["update_id"]]).values()
    assert message["text"] == "the first version"


# ---------------------------------------------------------------------------- not a message
@pytest.mark.parametrize(
    "kind",
    ["edited_message", "channel_post", "edited_channel_post", "callback_query", "none"],
)
def test_update_without_message_is_200_and_stores_nothing(
    pipeline: LocalStack, api: Api, kind: str
) -> None:
    full = make_update()
    update: dict[str, Any] = {"update_id": full["update_id"]}
    if kind == "callback_query":
        update[kind] = {"id": "1", "from": full["message"]["from"], "chat_instance": "x"}
    elif kind != "none":
        update[kind] = full["message"]
    response = api.post_update(update)
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True, "stored": False}
    assert_nothing_stored(pipeline, api)


def test_nul_characters_are_stored_replaced(pipeline: LocalStack, api: Api) -> None:
    """PostgreSQL cannot store NUL; rejecting the update would make Telegram redeliver it for a
    day and hold back the chat behind it, so it is accepted with NUL replaced by U+FFFD."""
    update = make_update(text="a\x00b")
    response = api.post_update(update)
    assert response.status_code == 200, response.text
    messages = api.wait_stage([update["update_id"]])
    assert messages[update["update_id"]]["text"] == "a\ufffdb"
