"""Hypothesis strategies for the Bot API's types: users, chats, messages and updates of every kind
chaos-model sends, each valid as the Bot API defines it.

``updates()`` draws one update of any kind; the building blocks (``users()``, ``chats()``,
``texts_with_entities()``) are public for tests of a service's own parsing.
"""

from __future__ import annotations

import time
from typing import Any

from hypothesis import strategies as st

from chaos_model.telegram._updates import (
    GROUP_ANONYMOUS_BOT,
    callback_query,
    captioned,
    channel_post,
    edited,
    entity,
    my_chat_member,
    utf16_length,
)

UPDATE_KINDS = (
    "message",
    "edited_message",
    "channel_post",
    "photo",
    "document",
    "reply",
    "forward",
    "entities",
    "anonymous_group_admin",
    "callback_query",
    "my_chat_member",
)
#: Telegram's limit on a message's text
MAX_TEXT = 4096
USER_IDS = st.integers(min_value=1, max_value=2**40)
UPDATE_IDS = st.integers(min_value=1, max_value=2**31 - 1)
MESSAGE_IDS = st.integers(min_value=1, max_value=2**31 - 1)
WORDS = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=12
)
CALLBACK_DATA = st.text(
    st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=64
)
TEXTS = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=200)


def _now() -> int:
    return int(time.time())


@st.composite
def users(draw: st.DrawFn, *, bot: bool = False) -> dict[str, Any]:
    """A user, with or without ``last_name``, ``username`` and ``language_code``."""
    user: dict[str, Any] = {"id": draw(USER_IDS), "is_bot": bot, "first_name": draw(WORDS)}
    if draw(st.booleans()):
        user["last_name"] = draw(WORDS)
    if draw(st.booleans()):
        user["username"] = draw(st.from_regex(r"[a-z][a-z0-9_]{4,15}", fullmatch=True))
    if draw(st.booleans()):
        user["language_code"] = draw(st.sampled_from(["en", "ru", "de", "uk", "pt-br"]))
    return user


@st.composite
def chats(draw: st.DrawFn, kind: str | None = None) -> dict[str, Any]:
    """A private chat (positive id), a group (negative) or a supergroup or channel (-100...)."""
    kind = kind or draw(st.sampled_from(["private", "group", "supergroup"]))
    if kind == "private":
        return {"id": draw(USER_IDS), "type": "private", "first_name": draw(WORDS)}
    if kind == "group":
        return {"id": -draw(st.integers(1, 10**10 - 1)), "type": "group", "title": draw(WORDS)}
    return {
        "id": -(10**12 + draw(st.integers(1, 10**10 - 1))),
        "type": kind,
        "title": draw(WORDS),
    }


@st.composite
def texts_with_entities(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]]]:
    """A long text with a link, a mention and bold words, and their entities (UTF-16 offsets)."""
    words = draw(st.lists(WORDS, min_size=3, max_size=60))
    link, mention = (
        "https://example.org/a?b=1",
        "@" + draw(st.from_regex(r"[a-z]{5,12}", fullmatch=True)),
    )
    parts = [*words[:1], link, *words[1:2], mention, *words[2:]]
    text = " ".join(parts)[:MAX_TEXT]
    entities = []
    for kind, needle in (("url", link), ("mention", mention)):
        start = text.find(needle)
        if start >= 0:
            entities.append(entity(kind, text, start, start + len(needle)))
    bold = words[0]
    entities.append(entity("bold", text, 0, len(bold)))
    entities.sort(key=lambda item: item["offset"])
    assert all(e["offset"] + e["length"] <= utf16_length(text) for e in entities)
    return text, entities


@st.composite
def text_messages(draw: st.DrawFn, chat: dict[str, Any] | None = None) -> dict[str, Any]:
    """A text message sent just now in ``chat`` (or any chat)."""
    chat = chat if chat is not None else draw(chats())
    sender = draw(users())
    if chat["type"] == "private":
        sender["id"] = chat["id"]  # a private chat's id is its user's
    return {
        "message_id": draw(MESSAGE_IDS),
        "from": sender,
        "chat": chat,
        "date": _now(),
        "text": draw(TEXTS),
    }


@st.composite
def updates(draw: st.DrawFn, kinds: tuple[str, ...] = UPDATE_KINDS) -> dict[str, Any]:
    """One update of one of ``kinds``, as the Bot API sends it to a webhook."""
    kind = draw(st.sampled_from(kinds))
    update_id = draw(UPDATE_IDS)
    message = draw(text_messages())
    if kind == "message":
        return {"update_id": update_id, "message": message}
    if kind == "edited_message":
        return edited(update_id, message, draw(TEXTS), message["date"] + draw(st.integers(1, 3600)))
    if kind == "channel_post":
        channel = draw(chats("channel"))
        return channel_post(update_id, channel, message["message_id"], _now(), draw(TEXTS))
    if kind in ("photo", "document"):
        return captioned(
            update_id,
            message["chat"]["id"],
            message["message_id"],
            message["date"],
            draw(TEXTS),
            media=kind,
            file_key=draw(st.integers(0, 10**9)),
        )
    if kind == "reply":
        earlier = draw(text_messages(message["chat"]))
        earlier["message_id"] = max(1, message["message_id"] - 1)
        return {"update_id": update_id, "message": {**message, "reply_to_message": earlier}}
    if kind == "forward":
        origin = {"type": "user", "date": message["date"] - 60, "sender_user": draw(users())}
        return {"update_id": update_id, "message": {**message, "forward_origin": origin}}
    if kind == "entities":
        text, entities = draw(texts_with_entities())
        return {"update_id": update_id, "message": {**message, "text": text, "entities": entities}}
    if kind == "anonymous_group_admin":
        group = draw(chats("supergroup"))
        anonymous = {**message, "chat": group, "from": GROUP_ANONYMOUS_BOT, "sender_chat": group}
        return {"update_id": update_id, "message": anonymous}
    if kind == "callback_query":
        return callback_query(update_id, message, draw(users()), draw(CALLBACK_DATA))
    return my_chat_member(
        update_id, message["chat"]["id"], message["from"], _now(), blocked=draw(st.booleans())
    )
