"""The storage contract suite: every test gets a fresh store on each backend (``db_url``)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator

import pytest

from brokerflow.storage import Store, open_store
from tests.conftest import PG_ENV

T0_MS = 1_790_000_000_000


class StepClock:
    """A clock that moves 1 ms each time it is read: times are distinct and predictable."""

    def __init__(self, start_ms: int = T0_MS) -> None:
        self.now_ms = start_ms
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            self.now_ms += 1
            return self.now_ms


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def store(db_url: str, clock: StepClock) -> Iterator[Store]:
    opened = open_store(db_url, clock=clock)
    yield opened
    opened.close()


@pytest.fixture
def other_db_url(db_url: str, tmp_path) -> Iterator[str]:
    """A second, separate database of the same backend as ``db_url``."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'other.db'}"
        return
    from tests.pg import fresh_schema_url

    with fresh_schema_url(os.environ[PG_ENV]) as url:
        yield url


def run_threads(count: int, work: Callable[[int], object], store: Store | None = None) -> list[object]:
    """Run ``work(i)`` on ``count`` threads released together; their results (or exceptions).

    Each thread closes its own connection when done (peewee connections are per thread).
    """
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def body(index: int) -> None:
        barrier.wait(timeout=10)
        try:
            results[index] = work(index)
        except Exception as exc:  # the test inspects it
            results[index] = exc
        finally:
            if store is not None:
                store.close()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive(), "a worker thread did not finish"
    return results
