"""TaskIQ over NATS JetStream, hardened for faults.

taskiq-nats's pull broker is used with the settings a resilient deployment needs: unlimited
reconnects with a short ping interval (so a paused server is noticed in seconds), a finite fetch
timeout (a server restart otherwise leaves the fetch waiting forever), a publish timeout, a
durable consumer whose ack wait exceeds the slowest normal task, and ``Nats-Msg-Id`` on every
publish so JetStream drops a republished outbox row inside its duplicate window.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from typing import Any

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from taskiq import AckableMessage, AsyncBroker, BrokerMessage
from taskiq_nats import NatsBroker, PullBasedJetStreamBroker

from pipeline_app.bugs import bug
from pipeline_app.settings import Settings

log = logging.getLogger(__name__)

MSG_ID_LABEL = "Nats-Msg-Id"
LISTEN_ERROR_BACKOFF = 0.2


def nats_options(settings: Settings, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.1,
        "connect_timeout": 1,
        "ping_interval": settings.nats_ping_interval,
        "max_outstanding_pings": 2,
    }


class PipelineBroker(PullBasedJetStreamBroker):
    """Pull-based JetStream broker that survives NATS pauses, kills and restarts."""

    def __init__(self, settings: Settings, client_name: str) -> None:
        super().__init__(
            servers=settings.nats_url,
            subject=settings.subject,
            stream_name=settings.stream_name,
            durable=settings.durable_name,
            stream_config=StreamConfig(
                name=settings.stream_name,
                subjects=[settings.subject],
                storage=StorageType.FILE,
                duplicate_window=120.0,
            ),
            consumer_config=ConsumerConfig(
                durable_name=settings.durable_name,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=settings.ack_wait,
                max_ack_pending=1000,
            ),
            pull_consume_batch=settings.worker_concurrency,
            pull_consume_timeout=settings.fetch_timeout,
            **nats_options(settings, client_name),
        )
        self.settings = settings

    async def startup(self) -> None:
        # Producers (the API) must not create a consumer: only the worker consumes.
        if self.is_worker_process:
            await super().startup()
            return
        # AsyncBroker.startup itself: BaseJetStreamBroker.startup (next in the MRO) would connect
        # a second time and create a consumer, and two read loops on one client break it.
        await AsyncBroker.startup(self)
        await self.client.connect(self.servers, **self.connection_kwargs)
        self.js = self.client.jetstream()
        await self._add_or_reuse_stream()

    async def kick(self, message: BrokerMessage) -> None:
        headers = {key: str(value) for key, value in message.labels.items()}
        await self.js.publish(
            self.subject,
            payload=message.message,
            headers=headers,
            timeout=self.settings.publish_timeout,
        )

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        while True:
            try:
                messages = await self.consumer.fetch(
                    batch=self.pull_consume_batch, timeout=self.pull_consume_timeout
                )
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - any broker error: wait and fetch again
                if type(error).__name__ != "TimeoutError":
                    log.warning("fetch failed (%s: %s); retrying", type(error).__name__, error)
                    await asyncio.sleep(LISTEN_ERROR_BACKOFF)
                continue
            for message in messages:
                yield AckableMessage(data=message.data, ack=message.ack)


class CoreNatsBroker(NatsBroker):
    """BUG ZOO core_nats: plain NATS publish/subscribe, at most once, no acknowledgement."""

    def __init__(self, settings: Settings, client_name: str) -> None:
        super().__init__(
            servers=settings.nats_url,
            subject=settings.subject + ".core",
            queue="pipeline-workers",
            **nats_options(settings, client_name),
        )


def build_broker(settings: Settings, client_name: str) -> PipelineBroker | CoreNatsBroker:
    if bug("core_nats"):
        return CoreNatsBroker(settings, client_name)
    return PipelineBroker(settings, client_name)
