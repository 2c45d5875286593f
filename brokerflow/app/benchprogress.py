"""What ``brokerflow bench`` is doing, on stderr: the phase (``[3/9] engine max rate``) and, in the
long phases, how far it got, at most once a second — instead of minutes of silence.

stdout keeps the results alone (the table, then one JSON line), so scripts read them as before.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    def __init__(self, phases: int, stream: TextIO | None = None, every_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.phases, self.stream, self.every_s, self.clock = phases, stream or sys.stderr, every_s, clock
        self.index = 0
        self.name = ""
        self.started = self._last = clock()

    def phase(self, name: str) -> None:
        """The next phase begins."""
        self.index += 1
        self.name, self.started, self._last = name, self.clock(), float("-inf")
        self._write(f"[{self.index}/{self.phases}] {name}")

    def tick(self, done: int, total: int, unit: str) -> None:
        """How far the phase is; printed only when ``every_s`` passed since the last line."""
        now = self.clock()
        if now - self._last < self.every_s:
            return
        self._last = now
        share = f" ({done / total:.0%})" if total > 0 else ""
        self._write(f"      {done:,}/{total:,} {unit}{share}, {now - self.started:.0f} s")

    def done(self, summary: str) -> None:
        self._write(f"      {summary} in {self.clock() - self.started:.1f} s")

    def _write(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


class Silent(Progress):
    """``--quiet``: the same calls, no output."""

    def _write(self, line: str) -> None:
        pass
