"""Updates as the Bot API sends them: every kind chaos-model sends validates against aiogram's
``Update`` model (aiogram 3, the brief's Telegram library) and keeps the Bot API's rules."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiogram.types import Update
from hypothesis import given, settings
from hypothesis import strategies as st

from chaos_model.machine import BOT, PROBE_CHAT
from chaos_model.telegram import BotApi, chat_id_of, message_update, run_chat_id
from chaos_model.telegram._updates import CHATS, is_supergroup_id, utf16_length
from chaos_model.telegram.strategies import UPDATE_KINDS, updates

INT32_MAX = 2**31 - 1


def _messages(update: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for key in ("message", "edited_message", "channel_post"):
        if key in update:
            found.append(update[key])
    if "callback_query" in update:
        found.append(update["callback_query"]["message"])
    return found


def check_bot_api_rules(update: dict[str, Any]) -> None:
    """What aiogram does not check but the Bot API promises."""
    assert 0 < update["update_id"] <= INT32_MAX
    now = time.time()
    for message in _messages(update):
        assert now - 86_400 < message["date"] <= now + 1, message["date"]
        chat = message["chat"]
        if chat["type"] == "private":
            assert chat["id"] > 0
        elif chat["type"] == "group":
            assert chat["id"] < 0 and not is_supergroup_id(chat["id"])
        else:
            assert str(chat["id"]).startswith("-100") and len(str(chat["id"])) == 14
        text = message.get("text", message.get("caption", ""))
        assert utf16_length(text) <= 4096
        for item in message.get("entities", []):
            assert item["offset"] >= 0 and item["offset"] + item["length"] <= utf16_length(text)
    chat_id_of(update)  # every update belongs to a chat Telegram queues it in


@settings(max_examples=300, deadline=None)
@given(updates())
def test_every_update_kind_is_a_valid_bot_api_update(update: dict[str, Any]) -> None:
    parsed = Update.model_validate(update)
    assert parsed.event_type in {
        "message",
        "edited_message",
        "channel_post",
        "callback_query",
        "my_chat_member",
    }
    check_bot_api_rules(update)


@pytest.mark.parametrize("kind", UPDATE_KINDS)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_each_kind_is_drawn_and_valid(kind: str, data: st.DataObject) -> None:
    update = data.draw(updates((kind,)))
    Update.model_validate(update)
    check_bot_api_rules(update)


@settings(max_examples=100, deadline=None)
@given(chat=st.integers(0, 5), text=st.text(max_size=300))
def test_what_the_machine_delivers_is_a_valid_bot_api_update(chat: int, text: str) -> None:
    update = BOT.message(run_chat_id(chat), text)
    Update.model_validate(update)
    check_bot_api_rules(update)
    Update.model_validate(BOT.message(PROBE_CHAT, "recovery probe"))


def test_ids_grow_as_a_bots_do() -> None:
    bot = BotApi()
    private, group, supergroup = (int(chat["id"]) for chat in CHATS)
    sent = [bot.message(chat, f"m{n}") for n in range(3) for chat in (private, group, supergroup)]
    update_ids = [u["update_id"] for u in sent]
    assert update_ids == sorted(update_ids) and len(set(update_ids)) == len(update_ids)
    for chat in (private, group, supergroup):
        ids = [u["message"]["message_id"] for u in sent if u["message"]["chat"]["id"] == chat]
        assert ids == [ids[0], ids[0] + 1, ids[0] + 2]
    assert not {u["message"]["message_id"] for u in sent} & set(update_ids)
    assert all(abs(u["message"]["date"] - time.time()) < 5 for u in sent)


def test_dates_move_with_the_clock() -> None:
    now = [1_800_000_000.0]
    bot = BotApi(start=5, clock=lambda: now[0])
    first = bot.message(run_chat_id(0), "a")
    now[0] += 90
    second = bot.message(run_chat_id(0), "b")
    assert (first["update_id"], second["update_id"]) == (5, 6)
    assert second["message"]["date"] - first["message"]["date"] == 90


def test_chats_and_senders_as_telegram_has_them() -> None:
    bot = BotApi()
    private, group, supergroup = (bot.message(run_chat_id(i), "x")["message"] for i in range(3))
    assert private["chat"]["type"] == "private" and private["chat"]["id"] > 0
    assert private["from"]["id"] == private["chat"]["id"]
    assert group["chat"]["type"] == "group" and group["chat"]["id"] < 0
    assert supergroup["chat"]["type"] == "supergroup"
    assert str(supergroup["chat"]["id"]).startswith("-100")
    senders = [bot.message(run_chat_id(i), "y")["message"]["from"] for i in range(3)]
    senders += [private["from"], group["from"], supergroup["from"]]
    assert any("username" in s for s in senders) and any("username" not in s for s in senders)
    assert any("last_name" in s for s in senders) and any("last_name" not in s for s in senders)
    assert any("language_code" in s for s in senders)
    assert any("language_code" not in s for s in senders)


def test_an_update_with_chosen_ids_keeps_them() -> None:
    update = message_update(4242, -1_001_234_567_890, "hello", message_id=17)
    assert update["update_id"] == 4242 and update["message"]["message_id"] == 17
    assert update["message"]["chat"]["type"] == "supergroup"
    Update.model_validate(update)
