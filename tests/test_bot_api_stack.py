"""A local stack runs the Bot API fake for a service that declares ``uses = ["telegram"]``: the
service's own calls to api.telegram.org reach it through the link ``web->telegram``, which a
partition cuts, and ``{bot_api_url}`` names the same link."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from chaos_model.adapter import load_adapter
from chaos_model.faults.partition import Partition
from chaos_model.stack import LocalStack

SERVICE = """
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx

API = "https://api.telegram.org/bot1:secret"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/avatar/"):
            user = self.path.rsplit("/", 1)[1]
            try:
                answer = httpx.get(f"{API}/getUserProfilePhotos?user_id={user}", timeout=2)
                body = {"status": answer.status_code, "answer": answer.json()}
            except httpx.HTTPError as error:
                body = {"error": type(error).__name__}
        else:
            body = {"base": os.environ["TG_BASE"]}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""
ADAPTER = """
[target]
name = "bot-api-user"

[webhook]
service = "web"
path = "/hook"
secret = "s"

[services.web]
command = ["{python}", "service.py", "{port}"]
uses = ["telegram"]
env = { TG_BASE = "{bot_api_url}" }
ready = "http://127.0.0.1:{port}/health"
points = { standby = false }

[observe]
messages = "SELECT 1, 1, 'received' WHERE false"
"""


@pytest.mark.slow
def test_a_services_bot_api_calls_reach_the_fake_through_its_link(tmp_path: Path) -> None:
    (tmp_path / "service.py").write_text(SERVICE)
    (tmp_path / "chaos-target.toml").write_text(ADAPTER)
    target = load_adapter(tmp_path / "chaos-target.toml")
    with LocalStack(target) as stack, httpx.Client(timeout=10) as http:
        web, fake = stack.endpoints.service_urls["web"], stack.endpoints.bot_api_url
        answer = http.get(f"{web}/avatar/7").json()
        assert answer["status"] == 200 and answer["answer"]["result"]["total_count"] == 1
        records = http.get(f"{fake}/control/records").json()["records"]
        assert [(r["method"], r["params"]) for r in records] == [
            ("getUserProfilePhotos", {"user_id": "7"})
        ]
        assert stack.proxy is not None
        link = stack.proxy.links()["web->telegram"]
        assert http.get(f"{web}/base").json()["base"] == f"http://{link['listen']}"

        Partition("web->telegram").apply(stack)
        assert http.get(f"{web}/avatar/8").json() == {"error": "ConnectError"}
        http.post(f"{fake}/control/fault", json={"mode": "error"}).raise_for_status()
        assert {"cleared 1 toxic(s)", "cleared Bot API fault"} <= set(stack.heal())
        stack.reset()
        assert http.get(f"{fake}/control/records").json()["records"] == []
        assert http.get(f"{web}/avatar/9").json()["status"] == 200
