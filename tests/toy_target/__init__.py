"""A small second system under test: FastAPI + core NATS + PostgreSQL, with a planted weakness."""
