"""The outbox relay: publishes committed outbox rows to the broker, then marks them sent.

Several relays may run at once (the API and the worker each run one): rows are claimed with
``FOR UPDATE SKIP LOCKED``. A crash between publish and mark republishes the row; JetStream drops
the copy by its ``Nats-Msg-Id`` inside the duplicate window, and the idempotent consumers make
any later copy harmless.
"""

from __future__ import annotations

import asyncio
import json
import logging

import asyncpg
from taskiq import AsyncBroker

from pipeline_app.broker import MSG_ID_LABEL
from pipeline_app.bugs import bug
from pipeline_app.db import TRANSIENT_DB_ERRORS
from pipeline_app.failpoints import failpoint
from pipeline_app.notify import Notifications, wait_for
from pipeline_app.settings import Settings

log = logging.getLogger(__name__)

ERROR_BACKOFF = 0.2


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        broker: AsyncBroker,
        settings: Settings,
        notifications: Notifications,
    ) -> None:
        self._pool = pool
        self._broker = broker
        self._settings = settings
        self._wake = notifications.subscribe("outbox")

    async def run(self) -> None:
        while True:
            try:
                published, next_due = await self.publish_due()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the relay must outlive any outage
                log.warning("relay: %s: %s", type(error).__name__, error)
                await asyncio.sleep(ERROR_BACKOFF)
                continue
            if published == self._settings.relay_batch:
                continue
            timeout = self._settings.relay_poll_interval
            if next_due is not None:
                timeout = max(0.0, min(timeout, next_due))
            await wait_for(self._wake, timeout)

    async def publish_due(self) -> tuple[int, float | None]:
        """Publish one batch of due rows; return how many and seconds until the next is due."""
        if bug("relay_mark_before_publish"):
            return await self._mark_then_publish()
        published = 0
        settings = self._settings
        async with self._pool.acquire(timeout=settings.db_acquire_timeout) as conn:
            async with conn.transaction():
                rows = await conn.fetch(
                    "SELECT id, task_name, args FROM outbox"
                    " WHERE sent_at IS NULL AND available_at <= now()"
                    " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                    settings.relay_batch,
                )
                for row in rows:
                    try:
                        await self._publish(row)
                    except TRANSIENT_DB_ERRORS:
                        raise
                    except Exception as error:  # noqa: BLE001 - broker down: keep what was sent
                        log.warning("relay: publish failed: %s: %s", type(error).__name__, error)
                        break
                    await failpoint("relay.after_publish_before_mark")
                    await conn.execute("UPDATE outbox SET sent_at = now() WHERE id = $1", row["id"])
                    published += 1
            next_due = await conn.fetchval(
                "SELECT extract(epoch FROM min(available_at) - now()) FROM outbox"
                " WHERE sent_at IS NULL"
            )
        return published, None if next_due is None else float(next_due)

    async def _mark_then_publish(self) -> tuple[int, float | None]:
        """BUG ZOO relay_mark_before_publish: the due rows are marked sent and committed first,
        published after. A crash between the two loses every task of the batch: the outbox says
        they went, NATS never had them."""
        settings = self._settings
        async with self._pool.acquire(timeout=settings.db_acquire_timeout) as conn:
            due = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND available_at <= now()"
            )
            if not due:
                return 0, None
            rows = await self._claim(conn)
            for row in rows:
                await self._publish(row)
        return len(rows), None

    async def _claim(self, conn: asyncpg.Connection) -> list[asyncpg.Record]:
        """BUG ZOO relay_mark_before_publish: mark the due rows sent, in a transaction alone."""
        async with conn.transaction():
            rows: list[asyncpg.Record] = await conn.fetch(
                "UPDATE outbox SET sent_at = now() WHERE id IN (SELECT id FROM outbox"
                " WHERE sent_at IS NULL AND available_at <= now() ORDER BY id LIMIT $1"
                " FOR UPDATE SKIP LOCKED) RETURNING id, task_name, args",
                self._settings.relay_batch,
            )
        return rows

    async def _publish(self, row: asyncpg.Record) -> None:
        task = self._broker.find_task(row["task_name"])
        if task is None:
            raise LookupError(f"outbox row {row['id']} names unknown task {row['task_name']}")
        kwargs = json.loads(row["args"])
        await task.kicker().with_labels(**{MSG_ID_LABEL: f"outbox-{row['id']}"}).kiq(**kwargs)
