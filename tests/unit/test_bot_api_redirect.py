"""A service's calls to api.telegram.org reach the Bot API fake with no change to its code: the
bootstrap rewrites the URL of httpx and aiohttp requests, which stay fault points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from bot_api_process import BotApiFake, running_bot_api

from chaos_model.points import BOOT_DIR, PointControl, boot_environment, telegram_environment

sys.path.insert(0, str(BOOT_DIR))
from chaos_redirect import redirected

HTTPX_SERVICE = """
import httpx

def fetch_me():
    return httpx.get("https://api.telegram.org/bot123:abc/getMe").json()

print(json.dumps(fetch_me()))
"""
AIOGRAM_SERVICE = """
import asyncio
from aiogram import Bot

async def main():
    async with Bot("123:abc") as bot:  # aiogram's default server: api.telegram.org
        me = await bot.get_me()
        sent = await bot.send_message(42, "hi")
        print(json.dumps([me.id, sent.message_id, sent.text]))

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def fake_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotApiFake]:
    with running_bot_api(tmp_path_factory.mktemp("bot-api")) as fake:
        yield fake


@pytest.fixture
def fake(fake_process: BotApiFake) -> BotApiFake:
    fake_process.reset()
    return fake_process


def run_service(tmp_path: Path, code: str, env: dict[str, str]) -> object:
    script = tmp_path / "service.py"
    script.write_text("import json\n" + code)
    done = subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_an_httpx_call_to_telegram_reaches_the_fake_as_a_fault_point(
    tmp_path: Path, fake: BotApiFake
) -> None:
    control = PointControl(tmp_path / "points")
    control.prepare()
    env = boot_environment(control.folder, "web", {})
    env.update(telegram_environment(env, fake.url))
    answer = run_service(tmp_path, HTTPX_SERVICE, env)
    assert answer == {
        "ok": True,
        "result": {
            "id": 123,
            "is_bot": True,
            "first_name": "Chaos Model Bot",
            "username": "chaos_model_123_bot",
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        },
    }
    assert [record["method"] for record in fake.records()] == ["getMe"]
    # the token is left out of the point's name: a secret, and not what tells calls apart
    key = "<module> > fetch_me: httpx.send GET /bot{token}/getMe"
    assert list(control.points()) == [("web", key)]


def test_aiogram_with_its_default_server_reaches_the_fake_without_fault_points(
    tmp_path: Path, fake: BotApiFake
) -> None:
    env = telegram_environment({}, fake.url)
    assert "CHAOS_MODEL_POINTS" not in env
    assert run_service(tmp_path, AIOGRAM_SERVICE, env) == [123, 1, "hi"]
    assert [record["method"] for record in fake.records()] == ["getMe", "sendMessage"]


def test_aiogram_calls_redirected_are_aiohttp_fault_points(
    tmp_path: Path, fake: BotApiFake
) -> None:
    control = PointControl(tmp_path / "points")
    control.prepare()
    env = boot_environment(control.folder, "bot", {})
    env.update(telegram_environment(env, fake.url))
    assert run_service(tmp_path, AIOGRAM_SERVICE, env) == [123, 1, "hi"]
    details = sorted(point.detail for point in control.points().values())
    assert details == ["POST /bot{token}/getMe", "POST /bot{token}/sendMessage"]


def test_without_the_variable_nothing_is_redirected(tmp_path: Path, fake: BotApiFake) -> None:
    control = PointControl(tmp_path / "points")
    control.prepare()
    code = "import chaos_points, sys\nprint(json.dumps('chaos_redirect' in sys.modules))"
    assert run_service(tmp_path, code, boot_environment(control.folder, "web", {})) is False


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://api.telegram.org/bot1:x/getFile?file_id=a",
            "http://127.0.0.1:9/bot1:x/getFile?file_id=a",
        ),
        ("https://API.Telegram.org:443/file/bot1:x/a.jpg", "http://127.0.0.1:9/file/bot1:x/a.jpg"),
        ("https://api.telegram.org.evil.example/bot1:x/getMe", None),
        ("http://127.0.0.1:8081/v1/chat/completions", None),
    ],
)
def test_only_the_bot_apis_host_is_rewritten(url: str, expected: str | None) -> None:
    assert redirected(url, "http://127.0.0.1:9") == expected


def test_the_bootstrap_goes_on_the_python_path_once() -> None:
    env = boot_environment(Path("/tmp/p"), "api", {"PYTHONPATH": "/srv/app"})
    env.update(telegram_environment(env, "http://127.0.0.1:9"))
    assert env["PYTHONPATH"].split(os.pathsep) == [str(BOOT_DIR), "/srv/app"]
    assert env["CHAOS_TELEGRAM_API"] == "http://127.0.0.1:9"
