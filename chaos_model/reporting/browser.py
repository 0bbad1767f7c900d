"""Headless Chromium over the DevTools protocol: open a local page, read the text that is on
screen, and take a PNG of one element.

Chromium is Debian's ``chromium`` package (``apt-get install chromium``); ``CHAOS_MODEL_CHROMIUM``
names another executable.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from chaos_model._wait import wait_until
from chaos_model.errors import ChaosModelError

CHROMIUM_ENV = "CHAOS_MODEL_CHROMIUM"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")

#: every text node that takes up room on the rendered page, HTML and SVG alike
_VISIBLE_TEXT = """
(() => {
  const texts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent.trim();
    const element = node.parentElement;
    if (!text || !element || getComputedStyle(element).visibility !== 'visible') continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    const shown = Array.from(range.getClientRects()).some(r => r.width > 0 && r.height > 0);
    if (shown) texts.push(text);
  }
  return texts;
})()
"""


class BrowserError(ChaosModelError):
    """Headless Chromium could not be started or did not do what was asked."""


def find_chromium() -> str | None:
    """The Chromium executable to use, or None when none is installed."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        return shutil.which(configured)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found is not None:
            return found
    return None


class HeadlessChromium:
    """One headless Chromium process with one page, driven over the DevTools protocol."""

    def __init__(self, executable: str, *, timeout: float = 30.0) -> None:
        self.executable = executable
        self.timeout = timeout
        self._profile = Path(tempfile.mkdtemp(prefix="chaos-model-chromium-"))
        self._process: subprocess.Popen[bytes] | None = None
        self._socket: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._events: list[dict[str, Any]] = []
        self._closing = contextlib.ExitStack()

    def __enter__(self) -> HeadlessChromium:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _start(self) -> None:
        stderr = (self._profile / "chromium.log").open("wb")
        self._process = subprocess.Popen(
            [
                self.executable,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                f"--user-data-dir={self._profile}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
        stderr.close()
        port_file = self._profile / "DevToolsActivePort"

        def port() -> int | None:
            if self._process is not None and self._process.poll() is not None:
                raise BrowserError(f"chromium exited with {self._process.returncode}")
            lines = port_file.read_text().splitlines() if port_file.exists() else []
            return int(lines[0]) if len(lines) >= 2 else None

        devtools_port = wait_until(
            port,
            timeout=self.timeout,
            what="chromium to open its DevTools port",
            on_timeout=self._log_tail,
        )
        pages = httpx.get(f"http://127.0.0.1:{devtools_port}/json/list", timeout=5).json()
        urls = [page["webSocketDebuggerUrl"] for page in pages if page["type"] == "page"]
        if not urls:
            raise BrowserError("chromium started without a page to drive")
        url = urls[0]
        self._socket = self._closing.enter_context(
            connect(url, max_size=None, open_timeout=self.timeout)
        )

    def _log_tail(self) -> str:
        log = self._profile / "chromium.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""

    def close(self) -> None:
        self._socket = None
        self._closing.close()
        if self._process is not None:
            # Chromium runs in a session of its own: end its renderers with it.
            self._signal_group(signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self._process.wait(timeout=10)
            self._process = None
        shutil.rmtree(self._profile, ignore_errors=True)

    def _signal_group(self, signum: signal.Signals) -> None:
        assert self._process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signum)

    # ------------------------------------------------------------------ protocol
    def call(self, method: str, **params: Any) -> dict[str, Any]:
        if self._socket is None:
            raise BrowserError("the browser is not started (use it as a context manager)")
        ident = next(self._ids)
        self._socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._receive(deadline, f"the answer to {method}")
            if message.get("id") == ident:
                if "error" in message:
                    raise BrowserError(f"{method} failed: {message['error'].get('message')}")
                result: dict[str, Any] = message.get("result", {})
                return result
            if "method" in message:
                self._events.append(message)

    def _receive(self, deadline: float, awaited: str) -> dict[str, Any]:
        assert self._socket is not None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrowserError(f"timed out after {self.timeout:.0f}s waiting for {awaited}")
        try:
            raw = self._socket.recv(timeout=remaining)
        except TimeoutError:
            raise BrowserError(
                f"timed out after {self.timeout:.0f}s waiting for {awaited}"
            ) from None
        message: dict[str, Any] = json.loads(raw)
        return message

    def _wait_event(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while True:
            for position, event in enumerate(self._events):
                if event["method"] == method:
                    del self._events[: position + 1]
                    return event
            message = self._receive(deadline, f"the event {method}")
            if "method" in message:
                self._events.append(message)

    # ------------------------------------------------------------------ what a person does
    def open(self, page: Path, *, width: int = 1400, height: int = 1000) -> None:
        """Open a local file and wait until it has loaded (scripts included)."""
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.call("Page.enable")
        self._events.clear()
        self.call("Page.navigate", url=page.resolve().as_uri())
        self._wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            detail = result["exceptionDetails"].get("exception", {}).get("description")
            raise BrowserError(f"the page's script failed: {detail or result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def visible_text(self) -> list[str]:
        """The text of every node that is rendered with a size, in document order."""
        texts: list[str] = self.evaluate(_VISIBLE_TEXT)
        return texts

    def screenshot(self, selector: str, path: Path) -> None:
        """A PNG of the element ``selector`` at its full size, even beyond the viewport."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return null; const r = e.getBoundingClientRect();"
            " return {x: r.left + scrollX, y: r.top + scrollY, width: r.width,"
            " height: r.height}; })()"
        )
        if not box:
            raise BrowserError(f"nothing on the page matches {selector!r}")
        shot = self.call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={**box, "scale": 1},
        )
        path.write_bytes(base64.b64decode(shot["data"]))
