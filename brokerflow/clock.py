"""The wall clock, in one place, for the layers that read it (the pure domain never does).

Every part that needs the time takes a ``now_ms`` callable through its constructor and this is
the one the engine passes; tests pass their own.
"""

from __future__ import annotations

import time

__all__ = ["now_ms"]


def now_ms() -> int:
    """Unix time in milliseconds."""
    return int(time.time() * 1000)
