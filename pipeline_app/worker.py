"""The TaskIQ worker process: consumes the JetStream durable consumer and runs the outbox relay.

Run: ``python -m pipeline_app.worker``. One process, ``PIPELINE_WORKER_CONCURRENCY`` tasks at
once; SIGTERM or SIGINT stops it after the running tasks finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

from taskiq.acks import AcknowledgeType
from taskiq.receiver import Receiver

from pipeline_app import failpoints
from pipeline_app.bugs import bug
from pipeline_app.logs import setup_logging
from pipeline_app.notify import Notifications
from pipeline_app.relay import OutboxRelay
from pipeline_app.settings import get_settings
from pipeline_app.worker_status import RunningTasks, StatusServer

log = logging.getLogger("pipeline_app.worker")

STARTUP_RETRY_DELAY = 0.2


def ack_type() -> AcknowledgeType:
    if bug("ack_before_work"):
        return AcknowledgeType.WHEN_RECEIVED  # BUG ZOO ack_before_work
    if bug("ack_failures"):
        return AcknowledgeType.WHEN_SAVED  # BUG ZOO ack_failures: taskiq's default
    return AcknowledgeType.MANUAL


async def run() -> None:
    from pipeline_app.tasks import broker

    settings = get_settings()
    failpoints.configure(settings.failpoints_file)
    broker.is_worker_process = True
    running = RunningTasks()
    broker.add_middlewares(running)
    status = StatusServer(running)
    status_port = os.environ.get("PIPELINE_WORKER_STATUS_PORT")
    if status_port:
        await status.start(int(status_port))
    while True:
        try:
            await broker.startup()
            break
        except Exception as error:  # noqa: BLE001 - wait for NATS and PostgreSQL to come up
            log.warning("startup failed (%s: %s); retrying", type(error).__name__, error)
            with contextlib.suppress(Exception):
                await broker.client.close()
            await asyncio.sleep(STARTUP_RETRY_DELAY)

    finish = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, finish.set)

    notifications = Notifications(settings, ("outbox",))
    notifications.start()
    relay_task: asyncio.Task[None] | None = None
    if settings.relay_enabled:
        relay = OutboxRelay(broker.state.pool, broker, settings, notifications)
        relay_task = asyncio.create_task(relay.run(), name="outbox-relay")

    receiver = Receiver(
        broker,
        ack_type=ack_type(),
        max_async_tasks=settings.worker_concurrency,
        run_startup=False,
        wait_tasks_timeout=settings.ack_wait,
    )
    log.info("worker ready (ack type %s)", ack_type().value)
    status.consuming = True
    try:
        await receiver.listen(finish)
    finally:
        await status.stop()
        if relay_task is not None:
            relay_task.cancel()
        await notifications.stop()
        await broker.shutdown()


def main() -> None:
    setup_logging("worker")
    asyncio.run(run())


if __name__ == "__main__":
    main()
