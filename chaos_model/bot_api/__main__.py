"""``python -m chaos_model.bot_api --port N [--host H]``: the fake Telegram Bot API."""

from __future__ import annotations

import argparse

from chaos_model.bot_api import build_app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="A fake Telegram Bot API with fault control")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    args = parser.parse_args()
    uvicorn.run(build_app(), host=args.host, port=args.port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
