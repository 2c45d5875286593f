"""One log line per interval for a warning a sender can repeat at will (garbage frames, gaps,
dropped connections): the counters see every occurrence, the log sees one line in a while
that says how many it held back, so a flood costs neither disk nor the ingress thread."""

from __future__ import annotations

import time
from collections.abc import Callable


class LogThrottle:
    """At most ``burst`` lines per ``every_s`` window. ``ready()`` is None for an occurrence
    past that, else how many were held back since the last line (0 when none were)."""

    __slots__ = ("every_s", "burst", "clock", "window_end", "used", "held")

    def __init__(self, every_s: float, burst: int = 1, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s, self.burst, self.clock = every_s, burst, clock
        self.window_end = float("-inf")
        self.used = self.held = 0

    def ready(self) -> int | None:
        now = self.clock()
        if now >= self.window_end:
            self.window_end, self.used = now + self.every_s, 0
        if self.used >= self.burst:
            self.held += 1
            return None
        self.used += 1
        held, self.held = self.held, 0
        return held


def held_note(held: int) -> str:
    """The tail of a throttled line: how many like it were not logged."""
    return f" ({held} more since the last such line, not logged)" if held else ""
