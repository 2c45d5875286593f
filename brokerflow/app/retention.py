"""Retention: the run log and the notifications keep ``--runs-retain-days`` days (default 90).

An engine extension with a thread of its own. Every ``interval_s`` it walks each table in
batches of ``batch_rows`` rows, one short transaction a batch and a pause between batches,
so the run log and the notifier (the busiest writers) never wait for more than one small
delete. ``trim_once(now_ms)`` is one full pass, for tests and for the thread.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from brokerflow.app.extension import EngineParts, Extension

log = logging.getLogger("brokerflow.retention")

DAY_MS = 86_400_000


class Retention(Extension):
    def __init__(self, retain_days: float, interval_s: float = 3600.0, batch_rows: int = 500,
                 pause_s: float = 0.05) -> None:
        self.retain_days, self.interval_s = retain_days, interval_s
        self.batch_rows, self.pause_s = batch_rows, pause_s
        self.trimmed = {"runs": 0, "notifications": 0}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._parts: EngineParts | None = None

    def after_actors_started(self, parts: EngineParts) -> None:
        self._parts = parts
        if self.retain_days > 0:
            self._thread = threading.Thread(target=self._run, name="brokerflow-retention", daemon=True)
            self._thread.start()

    def before_stop_input(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def trim_once(self, now_ms: int) -> dict[str, int]:
        """Delete what is older than the retention; ``{"runs": n, "notifications": m}`` deleted."""
        store = self._parts.store
        before_ms = now_ms - int(self.retain_days * DAY_MS)
        deleted = {name: self._trim(repo, before_ms) for name, repo in (("runs", store.runs),
                                                                       ("notifications", store.notifications))}
        for name, count in deleted.items():
            self.trimmed[name] += count
        if any(deleted.values()):
            log.info("retention: deleted %d runs and %d notifications older than %g days",
                     deleted["runs"], deleted["notifications"], self.retain_days)
        return deleted

    def _trim(self, repo: Any, before_ms: int) -> int:
        total, after = 0, -1
        while not self._stop.is_set():
            deleted, last = repo.trim(before_ms, after, self.batch_rows)
            total += deleted
            if not deleted or last is None:
                break
            after = last
            self._stop.wait(self.pause_s)  # the writers take the lock in between
        return total

    def _run(self) -> None:
        wait_s = min(60.0, self.interval_s)  # the first pass a minute after start, off the start's busy path
        while not self._stop.wait(wait_s):
            try:
                self.trim_once(self._parts.now_ms())
            except Exception:  # noqa: BLE001 - the next pass retries; nothing else depends on it
                log.exception("retention: trimming failed; retrying in %.0f s", self.interval_s)
            wait_s = self.interval_s
        self._parts.store.close()  # this thread's connection
