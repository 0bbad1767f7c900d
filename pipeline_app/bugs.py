"""The bug zoo: realistic mistakes, each switched on by name through ``PIPELINE_BUGS=a,b``.

Every switch guards one small, clearly marked code path; with no switch on, the pipeline is
correct. chaos-model's detection benchmark proves the suite finds each one.
"""

from __future__ import annotations

from functools import lru_cache

KNOWN_BUGS: dict[str, str] = {
    "ack_before_work": "the worker acknowledges a task on receipt, before doing the work",
    "publish_outside_txn": "the webhook commits, then publishes to NATS directly (no outbox)",
    "respond_before_commit": "the webhook answers 200 and persists in a background task",
    "no_update_dedup": "no unique key on update_id: a redelivered update is stored twice",
    "non_idempotent_extract": "extraction inserts knowledge without its processed marker",
    "ack_failures": "a failed task is acknowledged with no retry",
    "no_pool_recovery": "the API keeps reusing dead pooled connections after a restart",
    "ws_no_resume": "the WebSocket ignores the client's last event id",
    "infinite_redelivery": "no attempt bound: a permanently failing task is retried forever",
    "core_nats": "tasks travel over core NATS (at most once) instead of JetStream",
    # the deep zoo: each lives between two I/O calls, where no failpoint stands
    "webhook_two_transactions": "the webhook commits the update, then its outbox row apart",
    "dual_write_score": "scoring commits the score, then publishes extraction to NATS itself",
    "dedup_marker_first": "a stage commits its processed marker before doing its work",
    "relay_mark_before_publish": "the outbox relay marks rows sent and commits, then publishes",
    "extract_items_before_marker": "extraction commits its items, then its marker apart",
    "in_memory_retry": "a failed LLM call is retried from memory after acking the task",
    # only the oracle sees these: data of the right shape, wrong all the same
    "http_errors_final": "an error answer from the LLM (429, 5xx) dead-letters the message at once",
    "events_first_attempt_only": "only the first attempt of a stage writes the stage's event",
    "score_rounded": "the score is stored rounded to two decimals",
    "llm_client_retries": "the LLM client retries each call itself, inside a retried stage",
    "inline_spam_check": "the webhook asks the LLM whether a message is spam before storing it",
}


class UnknownBugError(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown bug {name!r}; known bugs: {', '.join(sorted(KNOWN_BUGS))}")


def parse_bugs(spec: str) -> frozenset[str]:
    names = frozenset(part.strip() for part in spec.split(",") if part.strip())
    for name in names:
        if name not in KNOWN_BUGS:
            raise UnknownBugError(name)
    return names


@lru_cache(maxsize=1)
def _active() -> frozenset[str]:
    from pipeline_app.settings import get_settings

    return parse_bugs(get_settings().bugs)


def bug(name: str) -> bool:
    """True when the named bug is switched on in this process."""
    assert name in KNOWN_BUGS, name
    return name in _active()
