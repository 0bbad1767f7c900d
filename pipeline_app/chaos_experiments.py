"""The reference pipeline's named chaos experiments: the failure scenarios it is built to survive.

chaos-model finds them through the adapter (``chaos-target.toml``: ``[experiments] catalogue =
"pipeline_app.chaos_experiments:BUILT_IN"``); ``chaos-model experiment list|run`` shows and runs
them next to the experiments saved in ``./chaos-experiments/``. Each is plain data (the fields of
``chaos_model.experiments.Experiment``), so the pipeline imports nothing of chaos-model here.
"""

from __future__ import annotations

from typing import Any


def step(rule: str, **args: Any) -> dict[str, Any]:
    """One step of a chaos program: a rule of chaos-model's machine and its arguments."""
    return {"rule": rule, "args": args}


def wait_for(condition: str, timeout: float = 15.0, **args: Any) -> dict[str, Any]:
    """An ``await`` step: wait until ``condition`` is observed, at most ``timeout`` seconds."""
    return step("await", condition=condition, timeout=timeout, **args)


STALL_RESPONSES: dict[str, Any] = {
    "type": "timeout",
    "stream": "downstream",
    "toxicity": 1.0,
    "attributes": {"timeout": 0},
}

BUILT_IN: tuple[dict[str, Any], ...] = (
    dict(
        name="nats-broker-crash-during-message-processing",
        hypothesis=(
            "NATS is SIGKILLed while messages are between stages. No message is lost: the "
            "webhook keeps answering 200 (the update and its outbox row are committed in "
            "PostgreSQL), tasks that were in JetStream survive on disk, and once NATS is back "
            "every update reaches `extracted` exactly once."
        ),
        blast_radius="nats (the broker); api and worker lose their NATS connection",
        steps=(
            step("choose_faults", kinds=["kill"]),
            step("deliver", chat=0, text="before the crash"),
            step("deliver", chat=1, text="before the crash"),
            step("kill", service="nats"),
            step("deliver", chat=2, text="during the outage"),
            step("deliver", chat=0, text="during the outage"),
            wait_for("pending", name="outbox_unsent", count=2),
            wait_for("webhook", outcome="2xx", count=4),
            step("read_back"),
            step("heal_all"),
            step("deliver", chat=0, text="after the restart"),
        ),
        observe=(
            "the outbox backlog while NATS is down",
            "webhook answers while NATS is down (2xx: the outbox absorbs the outage)",
            "messages by final stage, one per update",
            "JetStream consumer pending/ack-pending drain to zero (quiescence)",
        ),
        expected=(
            "The webhook answers 2xx throughout; after the restart the outbox relay publishes "
            "what it held and the worker resumes from its durable consumer; every update is "
            "`extracted` exactly once; every invariant holds."
        ),
        remediation=(
            "Transactional outbox in the webhook (the update and the `save_telegram_message` "
            "task commit together; a relay publishes with `Nats-Msg-Id` deduplication), "
            "JetStream file storage with a durable consumer, tasks acknowledged only after "
            "their effect is committed. The bug zoo's `core_nats` (core NATS, no JetStream) and "
            "`publish_outside_txn` show what this experiment catches without them."
        ),
    ),
    dict(
        name="postgres-connection-loss-and-pool-recovery",
        hypothesis=(
            "Every PostgreSQL connection is terminated, then PostgreSQL is SIGKILLed. While it "
            "is down the webhook answers 503 within 2 s (Telegram retries), and once it is back "
            "the API's and worker's connection pools replace their dead connections by "
            "themselves: no restart of the app is needed."
        ),
        blast_radius="postgres; every api and worker request that needs the database",
        steps=(
            step("choose_faults", kinds=["kill", "terminate_connections"]),
            step("deliver", chat=0, text="before the loss"),
            wait_for("stage", stage="extracted", count=1),
            step("terminate_connections"),
            step("deliver", chat=1, text="after the connections were cut"),
            step("kill", service="postgres"),
            step("deliver", chat=2, text="while postgres is down"),
            wait_for("webhook", outcome="5xx", count=1),
            step("heal_all"),
            step("deliver", chat=0, text="after the restart"),
        ),
        observe=(
            "webhook answers while PostgreSQL is down (5xx, then 2xx after the restart)",
            "messages by final stage",
            "seconds to quiesce after the heal",
        ),
        expected=(
            "503 while PostgreSQL is down, never a 2xx for an update that was not committed; "
            "after the restart the pools reconnect, Telegram's retries are accepted and every "
            "update is `extracted`; a fresh update completes within the recovery bound; every "
            "invariant holds."
        ),
        remediation=(
            "asyncpg pools (`pipeline_app/db.py`) that discard a connection that failed and open "
            "a new one, with bounded connect and command timeouts; the webhook maps transient "
            "database errors to 503 with Retry-After within 2 s. The bug zoo's "
            "`no_pool_recovery` keeps the dead pool and fails `recovers_by_itself` here; "
            "`respond_before_commit` answers 200 before the commit."
        ),
    ),
    dict(
        name="worker-crash-during-llm-call",
        hypothesis=(
            "The worker crashes after the LLM answered but before the score was committed. The "
            "task was not acknowledged, so JetStream redelivers it to the restarted worker "
            "after the ack wait, and the message is scored exactly once."
        ),
        blast_radius="worker; the message being scored (other chats wait for the worker)",
        steps=(
            step("choose_faults", kinds=["failpoint"]),
            step("failpoint", name="worker.score.after_llm_before_commit", action="crash"),
            step("deliver", chat=0, text="scored when the worker dies"),
            wait_for("failpoint_hit", name="worker.score.after_llm_before_commit"),
            step("heal_all"),
            step("deliver", chat=1, text="after the restart"),
        ),
        observe=(
            "the failpoint is hit (the worker dies mid-task)",
            "attempts per stage (the score runs twice, commits once)",
            "messages by final stage",
        ),
        expected=(
            "After the ack wait (2 s in tests) the score task is delivered again; the message "
            "has one score, one set of knowledge, and reaches `extracted`; every invariant holds."
        ),
        remediation=(
            "Acknowledge after commit (`pipeline_app/stages.py`: count the attempt, do the "
            "work, commit once, ack after commit), processed markers committed with each "
            "effect so a redelivered task is a no-op. The bug zoo's `ack_before_work` "
            "acknowledges on receipt and loses the message here."
        ),
    ),
    dict(
        name="telegram-webhook-timeout-and-redelivery",
        hypothesis=(
            "The webhook's answers never reach Telegram (a timeout toxic on the telegram->api "
            "link holds the response), so Telegram times out and delivers the same update "
            "again. The first attempt was committed; the redelivery is recognised by its "
            "`update_id` and stores nothing new."
        ),
        blast_radius="the telegram->api link; Telegram's deliveries for the affected chat",
        steps=(
            step("choose_faults", kinds=["network"]),
            step("network", link="telegram->api", toxic=STALL_RESPONSES),
            step("deliver", chat=0, text="answer lost"),
            wait_for("webhook", outcome="timeout", count=1),
            step("heal_all"),
            step("redeliver", update=0),
        ),
        observe=(
            "webhook attempts that timed out, and the 2xx that finally ended the delivery",
            "messages by final stage (one for the update, however often it was delivered)",
        ),
        expected=(
            "Telegram sees a timeout, retries with backoff, and gets a 2xx once the link is "
            "healed; the update is stored once and reaches `extracted` once; every invariant "
            "holds."
        ),
        remediation=(
            "Deduplicate on `update_id` in the same transaction as the insert (unique key, "
            "`ON CONFLICT DO NOTHING`), answer 200 for a duplicate. The bug zoo's "
            "`no_update_dedup` stores the update twice here."
        ),
    ),
    dict(
        name="llm-rate-limit-storm",
        hypothesis=(
            "The LLM answers 429 with Retry-After to every call for 3 s while three chats send "
            "messages. Scoring and extraction back off and retry within their attempt budget; "
            "the circuit breaker keeps the worker from hammering the LLM; nothing is "
            "dead-lettered, because the storm is shorter than the retry budget."
        ),
        blast_radius="the LLM dependency; score and extract stages of every chat",
        steps=(
            step("choose_faults", kinds=["llm"]),
            step("llm_fault", mode="rate_limit", seconds=3.0),
            step("deliver", chat=0, text="during the storm"),
            step("deliver", chat=1, text="during the storm"),
            step("deliver", chat=2, text="during the storm"),
            step("read_back"),
            wait_for("stage", stage="extracted", count=3, timeout=30.0),
        ),
        observe=(
            "attempts per stage (retries during the storm, never past the bound)",
            "messages by final stage (all `extracted`, none `failed`)",
        ),
        expected=(
            "Every message reaches `extracted` after the storm; no stage runs more than the "
            "attempt bound; every invariant holds."
        ),
        remediation=(
            "Retries with exponential backoff honouring Retry-After, a circuit breaker around "
            "the LLM client, a bounded number of attempts ending in a `failed` dead-letter "
            "state. The bug zoo's `infinite_redelivery` ignores the bound."
        ),
    ),
    dict(
        name="websocket-disconnect-and-resume",
        hypothesis=(
            "A dashboard's WebSocket drops while messages move through the pipeline, and "
            "reconnects with its last event id. The server replays what it missed from the "
            "events table: the dashboard ends up having seen every stage of every message, in "
            "order."
        ),
        blast_radius="one dashboard client; the API's WebSocket endpoint",
        steps=(
            step("choose_faults", kinds=["pause"]),
            step("open_feed", name="dashboard-a"),
            step("deliver", chat=0, text="seen live"),
            wait_for("stage", stage="extracted", count=1),
            step("drop_feed", name="dashboard-a"),
            step("deliver", chat=1, text="while disconnected"),
            wait_for("stage", stage="extracted", count=2),
            step("open_feed", name="dashboard-a"),
            step("open_feed", name="dashboard-b"),
            step("deliver", chat=2, text="after the resume"),
        ),
        observe=(
            "stage events each feed received, before and after the reconnect",
            "messages by final stage",
        ),
        expected=(
            "The resumed feed receives the events it missed, then live ones; no stage goes "
            "backwards on either feed; every invariant holds."
        ),
        remediation=(
            "Every stage transition is an event row with a monotonic id written in the stage's "
            "transaction; `/ws/events?last_event_id=N` replays rows after N before streaming. "
            "The bug zoo's `ws_no_resume` streams only live events and fails "
            "`feeds_saw_every_stage` here."
        ),
    ),
    dict(
        name="network-partition-api-nats",
        hypothesis=(
            "The api->nats link is cut (open connections too). The webhook still accepts "
            "updates, since it only writes to PostgreSQL; the outbox relays publish what they "
            "can reach (the worker's relay still reaches NATS), and nothing is published twice "
            "when the partition heals."
        ),
        blast_radius="the api->nats link; the API's outbox relay",
        steps=(
            step("choose_faults", kinds=["partition"]),
            step("deliver", chat=0, text="before the partition"),
            wait_for("stage", stage="extracted", count=1),
            step("partition", link="api->nats"),
            step("deliver", chat=1, text="during the partition"),
            step("deliver", chat=2, text="during the partition"),
            wait_for("webhook", outcome="2xx", count=3),
            step("read_back"),
            step("heal_all"),
        ),
        observe=(
            "webhook answers during the partition (2xx)",
            "messages by final stage; one message per update (no duplicate publish)",
        ),
        expected=(
            "2xx during the partition; every update reaches `extracted` exactly once; every "
            "invariant holds."
        ),
        remediation=(
            "Outbox rows claimed with `FOR UPDATE SKIP LOCKED` and published with a `Nats-Msg-Id` "
            "equal to the outbox id, so a publish retried after a partition is deduplicated by "
            "JetStream; tasks idempotent by processed markers."
        ),
    ),
    dict(
        name="cascading-nats-down-queue-backup-worker-restart",
        hypothesis=(
            "NATS is stopped, so work backs up in the outbox while Telegram keeps delivering; "
            "then the worker is killed as well. When both come back the backlog drains in "
            "order: nothing is lost, nothing is processed twice, and the system quiesces by "
            "itself."
        ),
        blast_radius="nats and the worker: the whole asynchronous half of the pipeline",
        steps=(
            step("choose_faults", kinds=["kill", "stop"]),
            step("deliver", chat=0, text="before the cascade"),
            step("stop", service="nats"),
            step("deliver", chat=1, text="backlog"),
            step("deliver", chat=2, text="backlog"),
            step("deliver", chat=0, text="backlog"),
            wait_for("pending", name="outbox_unsent", count=3),
            wait_for("webhook", outcome="2xx", count=4),
            step("kill", service="worker"),
            step("heal_all"),
            step("deliver", chat=1, text="after the cascade"),
        ),
        observe=(
            "the outbox backlog while NATS is down (the queue backs up)",
            "webhook answers while NATS is down (2xx: the backlog waits in the outbox)",
            "messages by final stage",
            "seconds to quiesce after the heal (the backlog drains)",
        ),
        expected=(
            "Every update accepted during the cascade reaches `extracted` exactly once after "
            "the heal; the pipeline quiesces within the deadline; a fresh update completes "
            "within the recovery bound; every invariant holds."
        ),
        remediation=(
            "The outbox decouples the webhook from NATS; the relay backs off while NATS is "
            "down and drains in id order; the worker's durable consumer resumes where it "
            "stopped; ack after commit makes the killed worker's tasks come back."
        ),
    ),
)
