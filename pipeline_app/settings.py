"""All settings of the reference pipeline, read from ``PIPELINE_*`` environment variables.

The defaults are scaled for fast, honest tests on one machine (seconds, not minutes); production
values would be larger (ack wait 30 s or more, LLM timeout tens of seconds).
"""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PIPELINE_", extra="ignore")

    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    nats_url: str = "nats://127.0.0.1:4222"
    llm_url: str = "http://127.0.0.1:8081"
    api_host: str = "127.0.0.1"
    api_port: int = 8000

    webhook_secret: str = "chaos-model-secret"
    max_body_bytes: int = 65536

    db_connect_timeout: float = 1.0
    db_command_timeout: float = 1.0
    db_acquire_timeout: float = 1.0
    webhook_deadline: float = 1.8

    stream_name: str = "pipeline"
    subject: str = "pipeline.tasks"
    durable_name: str = "pipeline-worker"
    ack_wait: float = 2.0
    fetch_timeout: float = 0.5
    publish_timeout: float = 1.0
    nats_ping_interval: float = 1.0
    worker_concurrency: int = 8

    llm_timeout: float = 1.5
    max_attempts: int = 10
    retry_base_delay: float = 0.2
    retry_max_delay: float = 1.0
    breaker_failure_threshold: int = 5
    breaker_open_seconds: float = 0.5

    relay_enabled: bool = True
    relay_poll_interval: float = 0.5
    relay_batch: int = 100

    failpoints_file: str = ""
    bugs: str = ""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
