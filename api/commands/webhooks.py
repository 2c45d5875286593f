"""Webhook dead letters (PROTOCOL section 10): list them, send one again, discard one.

A dead letter is a delivery whose attempts are exhausted (``actors.webhook_delivery``). Every
role that reads may list them; only admins retry or discard; a brand-scoped token sees and
touches only its brand's. A retry is one attempt now, with the delivery's own
``Idempotency-Key`` and ``webhook-id``: on success the dead letter is gone, else it stays with
the attempt added. Its URL is shown masked, as in the run log.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from brokerflow.api.access import ADMIN_ONLY, require_brand, scope_filter
from brokerflow.api.commands._params import get, invalid, no_unknown
from brokerflow.api.commands._registry import CommandContext, command
from brokerflow.api.commands._render import with_iso_times
from brokerflow.workflow.policies import webhook_requests as requests_policy

MAX_LIMIT, DEFAULT_LIMIT = 1000, 100


def _visible(ctx: CommandContext, params: dict[str, Any]) -> dict[str, Any]:
    no_unknown(params, ("id",))
    dead = ctx.services.store.webhooks.dead_letter(get(params, "id", int, required=True))
    require_brand(ctx.principal, dead.get("brand"))
    return dead


def _shown(dead: dict[str, Any]) -> dict[str, Any]:
    return with_iso_times(shown_dead_letter(dead))



def shown_dead_letter(dead: Mapping[str, Any]) -> dict[str, Any]:
    """A dead letter as the API shows it: its URL masked, ``attempts`` counted, the attempts as ``history``."""
    attempts = list(dead.get("attempts") or [])
    return {"id": dead["id"], "run_id": dead.get("run_id"), "rule_id": dead.get("rule_id"), "brand": dead.get("brand"),
            "url": requests_policy.mask_url(dead.get("url", "")), "attempts": len(attempts),
            "last_error": dead.get("last_error"), "created_at": dead.get("created_at"), "history": attempts}


@command("MngGetDeadLetters")
def list_dead_letters(ctx: CommandContext, params: dict[str, Any]) -> dict[str, Any]:
    no_unknown(params, ("limit", "brand"))
    limit = get(params, "limit", int, default=DEFAULT_LIMIT)
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid("limit", f"must be between 1 and {MAX_LIMIT}, got {limit}")
    brand = scope_filter(ctx.principal, get(params, "brand", str))
    return {"dead_letters": [_shown(d) for d in ctx.services.store.webhooks.dead_letters(limit, brand=brand)]}


@command("MngRetryDeadLetter", roles=ADMIN_ONLY)
def retry_dead_letter(ctx: CommandContext, params: dict[str, Any]) -> Future[dict[str, Any]]:
    dead = _visible(ctx, params)
    sent = ctx.services.redeliver_dead_letter(dead)
    reply: Future[dict[str, Any]] = Future()

    def done(fut: Future) -> None:
        try:
            after, status = fut.result()
        except BaseException as exc:  # noqa: BLE001 - the envelope carries it (CONFLICT, INTERNAL)
            reply.set_exception(exc)
            return
        reply.set_result({"dead_letter": _shown(after), "status": status})

    sent.add_done_callback(done)
    return reply


@command("MngDiscardDeadLetter", roles=ADMIN_ONLY)
def discard_dead_letter(ctx: CommandContext, params: dict[str, Any]) -> dict[str, Any]:
    dead = _visible(ctx, params)
    ctx.services.store.webhooks.discard(dead["id"])
    return {}
