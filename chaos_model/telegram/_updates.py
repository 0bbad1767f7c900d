"""Telegram updates exactly as the Bot API sends them.

A real bot sees ``update_id`` increase across the whole bot (it starts from some positive number
and grows one by one), ``message_id`` increase per chat and independently of ``update_id``, and
``date`` in Unix seconds of the moment the message was sent. Private chats have positive ids
(the user's own), basic groups negative ones, supergroups and channels ids of the form
``-100...``; a sender may or may not have a ``username``, a ``last_name`` and a
``language_code``. A service that parses ``date`` with ``datetime.fromtimestamp`` or keys its
messages by (chat id, message id) must see exactly that.

:class:`BotApi` hands out such updates; :func:`message_update` builds one with ids the caller
chooses (tests that need a known id).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

#: update ids stay in the signed 32-bit range, as the Bot API's do (a service may store them in
#: an ``integer`` column)
UPDATE_ID_FLOOR = 100_000_000
UPDATE_ID_SPREAD = 1_000_000_000
#: the first message id of a chat: chats in a bot's life rarely start at message 1
FIRST_MESSAGE_ID = 1_000

#: users who write to the bot; with and without the optional fields
USERS: tuple[dict[str, Any], ...] = (
    {
        "id": 511_000_001,
        "is_bot": False,
        "first_name": "Alice",
        "last_name": "Liddell",
        "username": "alice_l",
        "language_code": "en",
    },
    {"id": 511_000_002, "is_bot": False, "first_name": "Борис"},
    {"id": 511_000_003, "is_bot": False, "first_name": "Chen", "username": "chen_w"},
    {"id": 511_000_004, "is_bot": False, "first_name": "Dana", "language_code": "de"},
)

#: the chats a run writes in, by index: a private chat, a basic group, a supergroup
CHATS: tuple[dict[str, Any], ...] = (
    {"id": USERS[0]["id"], "type": "private", "first_name": "Alice", "username": "alice_l"},
    {"id": -4_012_345_678, "type": "group", "title": "Reading club"},
    {"id": -1_001_987_654_321, "type": "supergroup", "title": "Pipeline users", "username": "pipe"},
)
#: who writes in each chat of :data:`CHATS` (by index into :data:`USERS`)
SENDERS: tuple[tuple[int, ...], ...] = ((0,), (1, 3), (2, 1))


def run_chat_id(index: int) -> int:
    """The id of a run's chat number ``index``: the chats of :data:`CHATS` first, then more
    private chats."""
    return int(CHATS[index]["id"]) if index < len(CHATS) else 700_000_000 + index


def first_update_id(clock: Callable[[], float] = time.time) -> int:
    """Where a run's update ids start: apart from the last run's, inside the Bot API's range."""
    return UPDATE_ID_FLOOR + int(clock() * 1000) % (UPDATE_ID_SPREAD // 1000) * 1000


def is_supergroup_id(chat_id: int) -> bool:
    """Supergroup and channel ids are ``-100`` followed by ten digits."""
    return -(10**12) - 10**10 < chat_id < -(10**12)


def chat_for(chat_id: int) -> dict[str, Any]:
    """A chat object for ``chat_id``: private when positive, a supergroup when it has the
    ``-100`` prefix, else a basic group."""
    for chat in CHATS:
        if chat["id"] == chat_id:
            return dict(chat)
    if chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": f"user{chat_id}"}
    if is_supergroup_id(chat_id):
        return {"id": chat_id, "type": "supergroup", "title": f"supergroup {chat_id}"}
    return {"id": chat_id, "type": "group", "title": f"group {chat_id}"}


def sender_for(chat: Mapping[str, Any], turn: int = 0) -> dict[str, Any]:
    """The user writing turn ``turn`` in ``chat``: in a private chat, its owner."""
    for index, known in enumerate(CHATS):
        if known["id"] == chat["id"]:
            senders = SENDERS[index]
            return dict(USERS[senders[turn % len(senders)]])
    if chat["type"] == "private":
        return {"id": chat["id"], "is_bot": False, "first_name": chat.get("first_name", "user")}
    return dict(USERS[turn % len(USERS)])


def message_update(
    update_id: int,
    chat_id: int,
    text: str,
    *,
    message_id: int | None = None,
    date: int | None = None,
    sender: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``message`` update with text, as the Bot API sends it to a webhook."""
    chat = chat_for(chat_id)
    return {
        "update_id": update_id,
        "message": {
            "message_id": FIRST_MESSAGE_ID if message_id is None else message_id,
            "from": dict(sender) if sender is not None else sender_for(chat),
            "chat": chat,
            "date": int(time.time()) if date is None else date,
            "text": text,
        },
    }


class BotApi:
    """Hands out updates in the order a bot's webhook receives them. Thread-safe."""

    def __init__(self, start: int | None = None, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._update_ids = itertools.count(first_update_id(clock) if start is None else start)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._turns: dict[int, int] = {}
        self._lock = threading.Lock()

    def next_update_id(self) -> int:
        with self._lock:
            return next(self._update_ids)

    def message(self, chat_id: int, text: str) -> dict[str, Any]:
        """The next text message in ``chat_id``, sent now, by the chat's next sender."""
        with self._lock:
            update_id = next(self._update_ids)
            counter = self._message_ids.setdefault(chat_id, itertools.count(FIRST_MESSAGE_ID))
            message_id = next(counter)
            turn = self._turns.get(chat_id, 0)
            self._turns[chat_id] = turn + 1
        chat = chat_for(chat_id)
        return message_update(
            update_id,
            chat_id,
            text,
            message_id=message_id,
            date=int(self._clock()),
            sender=sender_for(chat, turn),
        )


def chat_id_of(update: Mapping[str, Any]) -> int:
    """The chat an update belongs to (Telegram queues updates per chat); for an update with no
    chat, the user it comes from."""
    for key in ("message", "edited_message", "channel_post", "edited_channel_post"):
        if key in update:
            return int(update[key]["chat"]["id"])
    for key in ("my_chat_member", "chat_member", "chat_join_request"):
        if key in update:
            return int(update[key]["chat"]["id"])
    if "callback_query" in update:
        query = update["callback_query"]
        message = query.get("message")
        return int(message["chat"]["id"]) if message else int(query["from"]["id"])
    raise KeyError(f"update {update.get('update_id')} has no chat or sender chaos-model knows")


# ----------------------------------------------------------------------------- other kinds
#: who sends a group message "as the group" (an anonymous administrator), per the Bot API
GROUP_ANONYMOUS_BOT: dict[str, Any] = {
    "id": 1_087_968_824,
    "is_bot": True,
    "first_name": "Group",
    "username": "GroupAnonymousBot",
}


def utf16_length(text: str) -> int:
    """The length of ``text`` in UTF-16 code units: the unit of entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def entity(kind: str, text: str, start: int, end: int, **extra: Any) -> dict[str, Any]:
    """A ``MessageEntity`` over ``text[start:end]`` (offsets in UTF-16 code units)."""
    offset = utf16_length(text[:start])
    return {"type": kind, "offset": offset, "length": utf16_length(text[start:end]), **extra}


def edited(update_id: int, message: Mapping[str, Any], text: str, edit_date: int) -> dict[str, Any]:
    """An ``edited_message`` update: ``message`` with new text and its ``edit_date``."""
    changed = {key: value for key, value in message.items() if key != "entities"}
    return {
        "update_id": update_id,
        "edited_message": {**changed, "text": text, "edit_date": edit_date},
    }


def channel_post(
    update_id: int, channel: Mapping[str, Any], message_id: int, date: int, text: str
) -> dict[str, Any]:
    """A ``channel_post`` update: no ``from``, the channel itself is the sender."""
    post = {"message_id": message_id, "sender_chat": dict(channel), "chat": dict(channel)}
    return {"update_id": update_id, "channel_post": {**post, "date": date, "text": text}}


def captioned(
    update_id: int,
    chat_id: int,
    message_id: int,
    date: int,
    caption: str,
    *,
    media: str = "photo",
    file_key: int = 0,
) -> dict[str, Any]:
    """A photo or a document with a ``caption`` and no ``text``."""
    update = message_update(update_id, chat_id, caption, message_id=message_id, date=date)
    message = update["message"]
    del message["text"]
    message["caption"] = caption
    file_id = f"AgAC{file_key:012d}"
    if media == "photo":
        message["photo"] = [
            {
                "file_id": f"{file_id}s",
                "file_unique_id": f"u{file_key}s",
                "width": 90,
                "height": 67,
                "file_size": 1_204,
            },
            {
                "file_id": f"{file_id}m",
                "file_unique_id": f"u{file_key}m",
                "width": 800,
                "height": 600,
                "file_size": 58_331,
            },
        ]
    else:
        message["document"] = {
            "file_id": file_id,
            "file_unique_id": f"u{file_key}",
            "file_name": "notes.pdf",
            "mime_type": "application/pdf",
            "file_size": 48_213,
        }
    return update


def callback_query(
    update_id: int, message: Mapping[str, Any], sender: Mapping[str, Any], data: str
) -> dict[str, Any]:
    """A press of an inline keyboard button under ``message``."""
    query = {
        "id": f"{sender['id']}{update_id}",
        "from": dict(sender),
        "message": dict(message),
        "chat_instance": f"-{abs(int(message['chat']['id'])) * 7 % 10**18}",
        "data": data,
    }
    return {"update_id": update_id, "callback_query": query}


def my_chat_member(
    update_id: int, chat_id: int, sender: Mapping[str, Any], date: int, *, blocked: bool = True
) -> dict[str, Any]:
    """The bot's own membership changed: blocked (or unblocked) by a user, removed from a group."""
    bot = {"id": 7_000_000_001, "is_bot": True, "first_name": "Pipeline", "username": "pipe_bot"}
    member = {"status": "member", "user": bot}
    kicked = {"status": "kicked", "user": bot, "until_date": 0}
    change = {
        "chat": chat_for(chat_id),
        "from": dict(sender),
        "date": date,
        "old_chat_member": member if blocked else kicked,
        "new_chat_member": kicked if blocked else member,
    }
    return {"update_id": update_id, "my_chat_member": change}
