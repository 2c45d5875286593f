"""Fixtures shared by the whole suite: loopback ports, database URLs, actor clean-up, waiting."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator

import pykka
import pytest

PG_ENV = "BROKERFLOW_TEST_PG"


def free_port() -> int:
    """An ephemeral loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tcp_endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def wait_until(predicate: Callable[[], object], timeout_s: float = 10.0, interval_s: float = 0.01) -> object:
    """Poll ``predicate`` until it is truthy; fail the test with a clear message on timeout.

    Polling a condition with a deadline is how these tests wait for other threads: a fixed
    sleep would be either flaky or slow.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s: {predicate}")
        time.sleep(interval_s)  # a polling interval, not a wait for an outcome


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all(timeout=10)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'brokerflow.db'}"


def _pg_url() -> str | None:
    return os.environ.get(PG_ENV) or None


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema of BROKERFLOW_TEST_PG (what the cluster needs); skipped when it names none."""
    url = _pg_url()
    if not url:
        pytest.skip(f"{PG_ENV} is not set: this needs PostgreSQL")
    from tests.pg import fresh_schema_url

    with fresh_schema_url(url) as scoped:
        yield scoped


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path) -> Iterator[str]:
    """A fresh database of each backend; PostgreSQL only when BROKERFLOW_TEST_PG names one."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'brokerflow.db'}"
        return
    url = _pg_url()
    if not url:
        pytest.skip(f"{PG_ENV} is not set: PostgreSQL contract run skipped")
    from tests.pg import fresh_schema_url

    with fresh_schema_url(url) as scoped:
        yield scoped
