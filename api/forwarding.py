"""A Workflow Machine command that came in over HTTP, for a process another engine owns, goes there.

Under ``serve --shards`` only shard 0 serves HTTP, and under ``serve --cluster`` each member
serves its own; either way a process lives in one engine (its pid's partition). The management
API reaches the owner by itself (``api.broker``, ``app.clusterforward``); the HTTP doors (the
gateway's ``/workflow`` and the console) ask this module first.

The request is turned into exactly the management envelope the door would have handed to its
own dispatcher — ``{"cmd", "token", "params"}``, the caller's own bearer token — and sent through
``Services.http_forward``, a hook the shell injects (this layer does not know shards or members).
The owner authenticates and authorizes it as if it had been called directly: nothing is
elevated. Its reply (success or error) comes back as the envelope, so the door answers with the
same status and body it would have given had it owned the process.

Not forwarded: ``START``/``RESTORE`` (they draw a pid this engine owns), requests without a pid,
and everything when no hook is set (one engine owns every process).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from typing import Any

from brokerflow.api import envelope
from brokerflow.api.framing import loads_json
from brokerflow.errors import BrokerflowError, Internal
from brokerflow.workflow.machine.commands import COMMANDS as MACHINE_COMMANDS
from brokerflow.workflow.machine.scope import CREATING

__all__ = ["ForwardHook", "forward_process_command"]

log = logging.getLogger(__name__)

# A request frame and its pid in (the pid as given: the hook need not parse the frame again, whose
# ``input`` may be as big as the engine takes); None to serve it here, else a Future of the owner's
# reply (its raw bytes, or an envelope such as CONFLICT "try again" or "busy", or the owner not
# answering in time).
ForwardHook = Callable[[bytes, str], "Future[Any] | None"]


def forward_process_command(forward: ForwardHook | None, request: dict[str, Any]) -> Future[dict[str, Any]] | None:
    """The owner's reply envelope, or None when ``request`` is to be served here."""
    if forward is None or request.get("cmd") not in MACHINE_COMMANDS or request.get("cmd") in CREATING:
        return None
    params = request.get("params")
    if not isinstance(params, dict) or not isinstance(params.get("pid"), str) or not params["pid"]:
        return None
    # JSON, as the HTTP caller sent it (no value changes type); a lone surrogate passes through
    # to the owner, which refuses it with BAD_REQUEST as any door would.
    frame = json.dumps(request, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        sent = forward(frame.encode("utf-8", "surrogatepass"), params["pid"])
    except Exception:  # noqa: BLE001 - as the management API does: the fault costs the forwarding only
        log.exception("HTTP: forwarding a Workflow Machine command failed; serving it here")
        return None
    if sent is None:
        return None
    reply: Future[dict[str, Any]] = Future()
    sent.add_done_callback(lambda done: reply.set_result(_envelope(done)))
    return reply


def _envelope(done: Future[Any]) -> dict[str, Any]:
    """The owner's reply as an envelope; whatever else came back is ``INTERNAL``, never a crash."""
    try:
        result = done.result()
    except (Exception, CancelledError) as exc:  # noqa: BLE001 - the caller gets it in the envelope
        return envelope.failure(exc if isinstance(exc, BrokerflowError) else Internal(
            f"forwarding to the process's owner failed: {exc!r}"[:300]))
    if isinstance(result, bytes):
        try:
            result = loads_json(result)
        except BrokerflowError:
            result = None
    if isinstance(result, dict) and isinstance(result.get("success"), bool):
        return result
    return envelope.failure(Internal("the process's owner answered something that is not a reply envelope"))
