"""``MngBacktestWorkflowRule``: how often would this draft rule have fired on the events we kept?

The scan runs on a database connection of its own (never the engine's writers' ones) within a
budget of rows (``limit``) and time (``BUDGET_S``); on SQLite's WAL and PostgreSQL a reader
never blocks the engine's writes, so live processing goes on. The range is clamped to the
retention (``--event-retention-hours``); a scan that ran out of budget says so (``truncated``,
``scanned_until``). Brand scope: the rule must be of the caller's brand, and only its brand's
events are evaluated.
"""

from __future__ import annotations

import time
from typing import Any

import msgpack

from brokerflow.api.access import require_brand
from brokerflow.api.commands._params import get, invalid
from brokerflow.api.commands._registry import CommandContext, command
from brokerflow.api.store import HistoryPages
from brokerflow.workflow.rules.backtest import Backtest, stored_event
from brokerflow.workflow.rules.validation import check_rule

BUDGET_S = 5.0  # wall time a backtest may scan for
LIMIT_DEFAULT = 100_000  # events scanned when the caller gives no limit
LIMIT_MAX = 1_000_000
PAGE_CHUNKS = 4  # stored chunks read at once (each up to actors.history.CHUNK_EVENTS events)


def _range(ctx: CommandContext, params: dict[str, Any]) -> tuple[int, int, list[str]]:
    now = ctx.services.now_ms()
    retention_ms = int(ctx.services.settings.event_retention_hours * 3_600_000)
    oldest = now - retention_ms
    to_ms = get(params, "to", int)
    from_ms = get(params, "from", int)
    notes = []
    to_ms = now if to_ms is None else to_ms
    if from_ms is None:
        from_ms = oldest
    elif from_ms < oldest:
        notes.append(f"from is before the retention ({retention_ms // 3_600_000} h): events start at {oldest}")
        from_ms = oldest
    if from_ms > to_ms:
        raise invalid("from", "must not be after to")
    return from_ms, to_ms, notes


def _limit(params: dict[str, Any]) -> int:
    limit = get(params, "limit", int)
    if limit is None:
        return LIMIT_DEFAULT
    if not 1 <= limit <= LIMIT_MAX:
        raise invalid("limit", f"must be from 1 to {LIMIT_MAX}")
    return limit


@command("MngBacktestWorkflowRule")
def backtest(ctx: CommandContext, params: dict[str, Any]) -> dict[str, Any]:
    rule = check_rule(get(params, "rule", dict, required=True))
    require_brand(ctx.principal, rule["brand"])
    limit = _limit(params)
    from_ms, to_ms, notes = _range(ctx, params)
    if ctx.services.history_flush is not None:
        ctx.services.history_flush()  # the events processed so far are all in the history
    run = Backtest(rule, ctx.services.refs)
    if ctx.services.open_history is None:
        raise invalid("rule", "this engine keeps no event history (--event-retention-hours 0)")
    scanned, last, truncated = _scan(ctx.services.open_history(), rule["trigger"], from_ms, to_ms, limit, run)
    out = run.result()
    out.update({"from": from_ms, "to": to_ms, "scanned_rows": scanned, "truncated": truncated})
    if truncated:
        out["scanned_until"] = last
        notes.append(f"stopped at the budget ({limit} events or {BUDGET_S:.0f} s): narrow the range for the rest")
    if notes:
        out["note"] = "; ".join([out["note"], *notes])
    return out


def _scan(history: HistoryPages, trigger: str, from_ms: int, to_ms: int, limit: int,
          run: Backtest) -> tuple[int, int | None, bool]:
    """Feed ``run`` the stored events of ``trigger`` in range, on a connection of its own, within budget.

    Chunks come in order of their oldest event; the events of a page are fed in ``ts`` order.
    """
    deadline = time.monotonic() + BUDGET_S
    scanned, after, last = 0, None, None
    try:
        while True:
            page = history.page(trigger, from_ms, to_ms, after, PAGE_CHUNKS)
            entries = sorted((entry for _, _, body in page
                              for entry in msgpack.unpackb(body, raw=False, strict_map_key=False)
                              if from_ms <= entry[0] <= to_ms), key=lambda entry: entry[0])
            fed = entries[: limit - scanned]
            for entry in fed:
                run.feed(stored_event(entry[0], entry[1:]))
                last = entry[0]
            scanned += len(fed)
            if len(fed) < len(entries):  # the limit cut this page short
                return scanned, last, True
            if len(page) < PAGE_CHUNKS:
                return scanned, last, False
            if scanned >= limit or time.monotonic() > deadline:
                return scanned, last, True
            after = (page[-1][1], page[-1][0])
    finally:
        history.close()
