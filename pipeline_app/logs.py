"""One log format for every process of the pipeline."""

from __future__ import annotations

import logging
import os


def setup_logging(process: str) -> None:
    logging.basicConfig(
        level=os.environ.get("PIPELINE_LOG_LEVEL", "INFO"),
        format=f"%(asctime)s {process} %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("taskiq.receiver.receiver", "httpx", "nats.aio.client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
