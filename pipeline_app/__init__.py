"""The system under test: a miniature Telegram -> FastAPI -> TaskIQ -> PostgreSQL pipeline.

It is built the way such a system should be built (transactional outbox, idempotent consumers,
acknowledgement after commit, bounded retries with a dead-letter state, a circuit breaker on the
LLM) and carries switchable known bugs (see :mod:`pipeline_app.bugs`) so that chaos-model can
prove it finds them.
"""
