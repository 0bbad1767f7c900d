"""Fixtures of the foundation suite: one real LocalStack per session, reset before each test.

* ``stack`` (session): PostgreSQL, nats-server, the LLM stub, the API and the worker as local
  processes. Started once; stopped at the end of the session.
* ``pipeline`` (function): the same stack after ``stack.reset()`` (empty tables, purged stream,
  LLM stub faults and counters cleared); ``stack.heal()`` runs after the test, so a test that
  pauses or kills a service never leaks its fault into the next one.
* ``api``: an :class:`helpers.Api` client bound to the reset stack.

``FOUNDATION_STACK_BUGS=name,...`` starts the session stack with bug-zoo entries switched on
(see :mod:`pipeline_app.bugs`): a quick way to check that the suite notices a known mistake.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest
from helpers import Api, stack_bugs

from chaos_model.stack import LocalStack


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    with LocalStack(bugs=stack_bugs()) as local:
        yield local


@pytest.fixture
def pipeline(stack: LocalStack, request: pytest.FixtureRequest) -> Iterator[LocalStack]:
    stack.reset()
    yield stack
    healed = stack.heal()
    if healed:
        print(f"heal after {request.node.name}: {', '.join(healed)}")


@pytest.fixture
def api(pipeline: LocalStack) -> Iterator[Api]:
    client = Api(pipeline)
    yield client
    client.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On a failing test against the stack, attach the tail of the API and worker logs."""
    report = yield
    if call.when == "call" and report.failed and "pipeline" in getattr(item, "fixturenames", ()):
        local: LocalStack | None = item.funcargs.get("pipeline")  # type: ignore[attr-defined]
        if local is not None:
            for name in ("api", "worker"):
                tail = local.services[name].process.log_tail(40)
                report.sections.append((f"{name} log (tail)", tail))
    return report
