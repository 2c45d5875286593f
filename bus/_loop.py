"""The loop every socket-owning bus thread runs: one ``poll_once`` after another until stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import zmq

__all__ = ["poll_until"]


def poll_until(stop: threading.Event, poll_once: Callable[[int], object], closed: Callable[[], bool],
               log: logging.Logger, failed: str, timeout_ms: int = 100) -> None:
    """``poll_once(timeout_ms)`` until ``stop`` is set. A ZeroMQ error on a closed socket or a
    terminated context ends the loop (the owner is shutting down); any other error is logged as
    ``failed`` and the loop goes on, so one bad step never stops the thread."""
    while not stop.is_set():
        try:
            poll_once(timeout_ms)
        except zmq.ZMQError as exc:
            if closed() or exc.errno in (zmq.ETERM, zmq.ENOTSOCK):
                return
            log.exception(failed)
        except Exception:  # noqa: BLE001 - the loop must outlive any single bad step
            log.exception(failed)
