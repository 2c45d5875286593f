"""``GET /ready``: may this engine take traffic? Storage answers and every actor is alive.

``/health`` stays the liveness check (the process answers HTTP at all); ``/ready`` is what a
load balancer or an orchestrator's readiness probe asks. The storage read runs on a thread of
its own with a deadline, so a database that hangs (a dropped network path to PostgreSQL)
makes the probe answer 503 in time instead of hanging with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Protocol

log = logging.getLogger(__name__)

STORAGE_TIMEOUT_S = 2.0
REASON_MAX_CHARS = 200


class Pingable(Protocol):
    def ping(self) -> None: ...


class Readiness:
    """``problems()``: the reasons this engine is not ready; an empty list means ready."""

    def __init__(self, store: Pingable, dead_actors: Callable[[], list[str]] | None = None,
                 timeout_s: float = STORAGE_TIMEOUT_S) -> None:
        self.store, self.dead_actors, self.timeout_s = store, dead_actors, timeout_s
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readiness")

    def problems(self) -> list[str]:
        problems = []
        storage = self._storage_problem()
        if storage:
            problems.append(storage)
        if self.dead_actors is not None:
            problems.extend(f"{name} is not running" for name in self.dead_actors())
        return problems

    def _storage_problem(self) -> str | None:
        try:
            self._pool.submit(self.store.ping).result(timeout=self.timeout_s)
        except FutureTimeout:
            return f"storage: no answer within {self.timeout_s:g} s"
        except Exception as exc:  # noqa: BLE001 - any failure is the reason to report
            log.warning("readiness: storage does not answer: %s", type(exc).__name__)
            return f"storage: {type(exc).__name__}: {str(exc)[:REASON_MAX_CHARS]}"
        return None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
