"""The Telegram Bot API fake, as aiogram and plain HTTP clients see it: well-formed results for
the common methods, the Bot API's error shape, its own faults, and the records of every call."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter, TelegramServerError
from aiogram.types import BufferedInputFile
from bot_api_process import BotApiFake, running_bot_api

from chaos_model._wait import wait_until

TOKEN = "123456:chaos-test_token"
T = TypeVar("T")


@pytest.fixture(scope="module")
def fake_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotApiFake]:
    with running_bot_api(tmp_path_factory.mktemp("bot-api")) as fake:
        yield fake


@pytest.fixture
def fake(fake_process: BotApiFake) -> Iterator[BotApiFake]:
    fake_process.reset()
    yield fake_process
    fake_process.clear()


def with_bot(fake: BotApiFake, use: Callable[[Bot], Awaitable[T]]) -> T:
    """``use(bot)`` with aiogram's Bot pointed at the fake."""

    async def run() -> T:
        session = AiohttpSession(api=TelegramAPIServer.from_base(fake.url))
        async with Bot(TOKEN, session=session) as bot:
            return await use(bot)

    return asyncio.run(run())


def call(fake: BotApiFake, method: str, **kwargs: Any) -> httpx.Response:
    return fake.http.post(f"/bot{TOKEN}/{method}", **kwargs)


def test_get_me_is_the_bot_the_token_names(fake: BotApiFake) -> None:
    me = with_bot(fake, lambda bot: bot.get_me())
    assert (me.id, me.is_bot, me.username) == (123456, True, "chaos_model_123456_bot")
    assert me.can_join_groups is True


def test_sent_messages_parse_and_number_per_chat(fake: BotApiFake) -> None:
    async def send(bot: Bot) -> list[Any]:
        return [
            await bot.send_message(42, "hello"),
            await bot.send_message(42, "again"),
            await bot.send_message(-1001, "group"),
        ]

    first, second, other = with_bot(fake, send)
    assert (first.message_id, second.message_id, other.message_id) == (1, 2, 1)
    assert (first.text, first.chat.type, first.chat.id) == ("hello", "private", 42)
    assert first.from_user is not None and first.from_user.id == 123456
    assert (other.chat.type, other.chat.title) == ("supergroup", "Chat -1001")


def test_profile_photos_chats_members_and_files_parse(fake: BotApiFake) -> None:
    async def ask(bot: Bot) -> tuple[Any, ...]:
        photos = await bot.get_user_profile_photos(42)
        file = await bot.get_file(photos.photos[0][-1].file_id)
        assert file.file_path is not None
        content = await bot.download_file(file.file_path)
        assert content is not None
        return (
            photos,
            await bot.get_user_profile_photos(42, offset=1),
            await bot.get_chat("@news"),
            await bot.get_chat_member(-1001, 7),
            file,
            content.read(),
        )

    photos, past_the_end, channel, member, file, content = with_bot(fake, ask)
    assert photos.total_count == 1 and [p.width for p in photos.photos[0]] == [160, 320, 640]
    assert past_the_end.total_count == 1 and past_the_end.photos == []
    assert (channel.type, channel.username, channel.max_reaction_count) == ("channel", "news", 11)
    assert (member.status, member.user.id, member.user.is_bot) == ("member", 7, False)
    assert file.file_path.startswith("photos/") and file.file_size == len(content)
    assert file.file_path.encode() in content


def test_actions_edits_deletes_callbacks_and_the_webhook(fake: BotApiFake) -> None:
    async def act(bot: Bot) -> tuple[Any, ...]:
        assert await bot.send_chat_action(42, "typing") is True
        assert await bot.answer_callback_query("query-1", text="done") is True
        edited = await bot.edit_message_text("edited", chat_id=42, message_id=5)
        assert await bot.delete_message(42, 5) is True
        assert await bot.set_webhook("https://bot.example/hook", allowed_updates=["message"])
        set_info = await bot.get_webhook_info()
        assert await bot.delete_webhook() is True
        return edited, set_info, await bot.get_webhook_info()

    edited, set_info, deleted_info = with_bot(fake, act)
    assert (edited.message_id, edited.text, edited.edit_date is not None) == (5, "edited", True)
    assert (set_info.url, set_info.allowed_updates) == ("https://bot.example/hook", ["message"])
    assert (deleted_info.url, deleted_info.pending_update_count) == ("", 0)


def test_an_upload_in_a_multipart_form_is_recorded_by_name_and_size(fake: BotApiFake) -> None:
    content = b"\xff\xd8not-really-a-jpeg"
    photo = BufferedInputFile(content, filename="avatar.jpg")
    sent = with_bot(fake, lambda bot: bot.send_photo(42, photo, caption="me"))
    assert sent.photo is not None and sent.caption == "me"
    (record,) = fake.records("sendPhoto")
    assert record["params"]["photo"] == {
        "filename": "avatar.jpg",
        "content_type": "application/octet-stream",
        "size": len(content),
    }
    assert record["params"]["chat_id"] == "42" and "attach" not in str(record["params"])


def test_parameters_come_from_json_a_form_or_the_query_string(fake: BotApiFake) -> None:
    answers = [
        call(fake, "sendMessage", json={"chat_id": 1, "text": "json"}),
        call(fake, "sendMessage", data={"chat_id": "1", "text": "form"}),
        fake.http.get(f"/bot{TOKEN}/sendMessage", params={"chat_id": 1, "text": "query"}),
    ]
    assert [a.json()["result"]["text"] for a in answers] == ["json", "form", "query"]
    assert [a.json()["result"]["message_id"] for a in answers] == [1, 2, 3]


def test_method_names_ignore_case_and_the_test_environment_has_its_own_paths(
    fake: BotApiFake,
) -> None:
    assert call(fake, "GETME").json()["result"]["id"] == 123456
    assert fake.http.get(f"/bot{TOKEN}/test/getMe").json()["ok"] is True
    assert [record["method"] for record in fake.records()] == ["getMe", "getMe"]


def test_mistakes_get_the_bot_apis_own_error_shape(fake: BotApiFake) -> None:
    unknown = call(fake, "sendTelepathy")
    assert (unknown.status_code, unknown.json()) == (
        404,
        {"ok": False, "error_code": 404, "description": "Not Found: method not found"},
    )
    empty = call(fake, "sendMessage", json={"chat_id": 1})
    assert (empty.status_code, empty.json()["description"]) == (
        400,
        "Bad Request: message text is empty",
    )
    assert fake.http.get("/botnot-a-token/getMe").status_code == 404
    with pytest.raises(TelegramBadRequest, match="chat_id is empty"):
        with_bot(fake, lambda bot: bot.send_message("", "x"))


def test_flood_control_is_a_429_with_retry_after_for_the_matching_methods(
    fake: BotApiFake,
) -> None:
    fake.fault("rate_limit", retry_after=3, method="send*", calls=1)
    assert call(fake, "getMe").status_code == 200
    limited = call(fake, "sendMessage", json={"chat_id": 1, "text": "x"})
    assert limited.status_code == 429
    assert limited.json() == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 3",
        "parameters": {"retry_after": 3},
    }
    assert call(fake, "sendMessage", json={"chat_id": 1, "text": "x"}).status_code == 200
    fake.fault("rate_limit", retry_after=7)
    with pytest.raises(TelegramRetryAfter) as raised:
        with_bot(fake, lambda bot: bot.get_me())
    assert raised.value.retry_after == 7


def test_a_server_error_for_a_while_then_none(fake: BotApiFake) -> None:
    fake.fault("error", status=502, seconds=0.3)
    with pytest.raises(TelegramServerError, match="Bad Gateway"):
        with_bot(fake, lambda bot: bot.get_me())
    wait_until(lambda: call(fake, "getMe").status_code == 200, timeout=5, what="the fault to end")
    assert fake.stats()["fault"] is None


def test_a_slow_answer_comes_late_and_whole(fake: BotApiFake) -> None:
    fake.fault("slow", delay=0.3)
    began = time.monotonic()
    answer = call(fake, "getMe")
    assert time.monotonic() - began >= 0.3 and answer.json()["ok"] is True


def test_a_hung_call_waits_until_the_fault_is_cleared(fake: BotApiFake) -> None:
    fake.fault("hang", method="getChat")
    answers: list[httpx.Response] = []
    caller = threading.Thread(target=lambda: answers.append(call(fake, "getChat?chat_id=1")))
    caller.start()
    wait_until(lambda: fake.stats()["in_flight"] == 1, timeout=5, what="the call to hang")
    assert answers == []
    fake.clear()
    caller.join(timeout=5)
    assert [a.status_code for a in answers] == [502]


def test_a_bad_fault_names_its_field(fake: BotApiFake) -> None:
    bad = fake.http.post("/control/fault", json={"mode": "error", "status": 418})
    assert bad.status_code == 400 and "'status'" in bad.json()["error"]
    unknown = fake.http.post("/control/fault", json={"mode": "melt"})
    assert unknown.status_code == 400 and "'mode'" in unknown.json()["error"]


def test_records_say_what_was_called_with_what_and_reset_forgets_them(fake: BotApiFake) -> None:
    fake.fault("error", calls=1)
    call(fake, "sendMessage", json={"chat_id": 9, "text": "lost"})
    call(fake, "sendMessage", json={"chat_id": 9, "text": "sent"})
    failed, sent = fake.records("sendmessage")
    assert (failed["status"], failed["fault"], failed["description"]) == (
        500,
        "error",
        "Internal Server Error",
    )
    assert (sent["status"], sent["params"], sent["bot_id"]) == (
        200,
        {"chat_id": 9, "text": "sent"},
        123456,
    )
    assert sent["result"]["message_id"] == 1
    assert sent["requested_at"] <= sent["answered_at"]
    assert fake.stats()["calls"] == {"sendMessage": 2}
    fake.reset()
    assert fake.records() == [] and fake.stats()["total"] == 0
    again = call(fake, "sendMessage", json={"chat_id": 9, "text": "fresh"})
    assert again.json()["result"]["message_id"] == 1


def test_tokens_are_not_kept_in_the_records(fake: BotApiFake) -> None:
    call(fake, "getMe")
    assert TOKEN.split(":")[1] not in str(fake.records())
