"""The database URL as each kind of client wants it: a service's own settings take
``{database_url_asyncpg}`` or ``{database_dsn}`` instead of a wrapper script that rewrites it."""

from __future__ import annotations

from pathlib import Path

from chaos_model.adapter._render import Placeholders, database_url_variants

URL = "postgresql://app:s3cret@127.0.0.1:5432/app_test"


def test_sqlalchemy_urls_name_their_driver() -> None:
    variants = database_url_variants(URL)
    assert (
        variants["database_url_asyncpg"]
        == "postgresql+asyncpg://app:s3cret@127.0.0.1:5432/app_test"
    )
    assert (
        variants["database_url_psycopg"]
        == "postgresql+psycopg://app:s3cret@127.0.0.1:5432/app_test"
    )


def test_the_libpq_keyword_string_quotes_what_needs_quoting() -> None:
    assert database_url_variants(URL)["database_dsn"] == (
        "host=127.0.0.1 port=5432 dbname=app_test user=app password=s3cret"
    )
    odd = database_url_variants("postgresql://app:it%27s%20me@localhost/db")["database_dsn"]
    assert odd == "host=localhost dbname=db user=app password='it\\'s me'"


def test_commands_can_use_the_variants() -> None:
    values = Placeholders(
        root=Path("."),
        dir=Path("."),
        database_url=URL,
        nats_url="nats://127.0.0.1:4222",
        llm_url="http://127.0.0.1:8000",
        webhook_secret="s",
        failpoints_file="",
        bugs="",
        stream="",
        durable="",
    )
    assert values.render("DB={database_url_asyncpg}").startswith("DB=postgresql+asyncpg://app:")
