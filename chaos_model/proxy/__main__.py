"""``python -m chaos_model.proxy``: run the fault proxy in the foreground.

    python -m chaos_model.proxy --control 127.0.0.1:0 \\
        --link "api->postgres=0:127.0.0.1:5432" --ready-file /tmp/proxy.json

``--link NAME=LISTEN_PORT:UPSTREAM_HOST:UPSTREAM_PORT`` (repeatable) listens on
127.0.0.1:LISTEN_PORT (0 = free port). Once everything listens, the ready file gets
``{"control": "http://127.0.0.1:N", "links": {name: port}}`` (written atomically).
SIGTERM / SIGINT stop the proxy and exit with status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence

from ._control import ControlServer
from ._link import parse_address
from ._server import ProxyServer


def _link_spec(text: str) -> tuple[str, str, str]:
    name, sep, rest = text.partition("=")
    listen_port, sep2, upstream = rest.partition(":")
    if not (sep and sep2 and name and listen_port.isdigit() and upstream):
        raise argparse.ArgumentTypeError(
            f"expected NAME=LISTEN_PORT:UPSTREAM_HOST:UPSTREAM_PORT, got {text!r}"
        )
    try:
        parse_address(upstream, what="upstream")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return name, f"127.0.0.1:{listen_port}", upstream


def _control_spec(text: str) -> tuple[str, int]:
    try:
        return parse_address(text, what="control")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chaos_model.proxy", description="Toxiproxy-style TCP fault proxy."
    )
    parser.add_argument(
        "--control",
        type=_control_spec,
        default=("127.0.0.1", 8474),
        help="control API HOST:PORT (loopback only; port 0 = pick a free one)",
    )
    parser.add_argument(
        "--link",
        type=_link_spec,
        action="append",
        default=[],
        metavar="SPEC",
        help="NAME=LISTEN_PORT:UPSTREAM_HOST:UPSTREAM_PORT (repeatable)",
    )
    parser.add_argument("--ready-file", help="write control URL and link ports here once ready")
    parser.add_argument("--seed", type=int, default=None, help="seed for toxicity/jitter draws")
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="event loop; auto = uvloop when installed",
    )
    return parser


async def _serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    proxy = ProxyServer(seed=args.seed)
    control = ControlServer(proxy, *args.control)
    try:
        for name, listen, upstream in args.link:
            await proxy.add_link(name, listen, upstream)
        await control.start()
        if args.ready_file:
            _write_ready(args.ready_file, control.url, proxy)
        await stop.wait()
    finally:
        await control.close()
        await proxy.close()


def _write_ready(path: str, url: str, proxy: ProxyServer) -> None:
    data = {"control": url, "links": {n: link.port for n, link in proxy.links.items()}}
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def _run(args: argparse.Namespace) -> None:
    if args.loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if args.loop == "uvloop":
                raise SystemExit("uvloop is not installed") from None
        else:
            uvloop.run(_serve(args))
            return
    asyncio.run(_serve(args))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _run(args)
    except OSError as exc:
        print(f"chaos_model.proxy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
