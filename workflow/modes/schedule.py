"""When deferred rules are due, and what a tick does about due times it missed (pure).

A tick looks at the window ``(since_ms, now_ms]``: the time since the previous tick (or since
the rule was last saved, whichever is later). Catch-up policy: **the latest due time in the
window fires once; older ones in the same window are skipped and counted**. In steady running
a window is one scheduler interval (60 s by default, the resolution of cron), so nothing is
skipped; after downtime a rule that was due many times runs once, for its latest due time,
instead of flooding managers with a backlog of stale reminders. Whether a due time already
fired is not decided here: the caller claims ``(rule, due time)`` in storage, which makes
each due time fire once across ticks, restarts and engines.

Cron expressions are 5 fields, parsed by croniter, and read in UTC. ``at`` is ISO-8601 with a
zone (``workflow.clock``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, NamedTuple

from croniter import croniter

from brokerflow.workflow.isotime import parse_iso_ms

SKIP_COUNT_CAP = 10_000  # counting skipped due times stops here ("10000 or more")


class Plan(NamedTuple):
    """What one tick does for one rule: fire ``due_ms`` (None: nothing), having skipped ``skipped``."""

    due_ms: int | None
    skipped: int = 0


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc)


def _ms(moment: datetime) -> int:
    return int(round(moment.timestamp() * 1000))


def cron_due_at_or_before(cron: str, now_ms: int) -> int:
    """The latest time ``cron`` matches that is ``<= now_ms`` (cron has minute resolution)."""
    # croniter's get_prev is strict, so start one second past the current second.
    start = _utc((now_ms // 1000 + 1) * 1000)
    return _ms(croniter(cron, start).get_prev(datetime))


def cron_due_after(cron: str, after_ms: int) -> int:
    """The first time ``cron`` matches strictly after ``after_ms``."""
    return _ms(croniter(cron, _utc(after_ms)).get_next(datetime))


def _cron_plan(cron: str, since_ms: int, now_ms: int) -> Plan:
    latest = cron_due_at_or_before(cron, now_ms)
    if latest <= since_ms:
        return Plan(None)
    skipped = 0
    older = croniter(cron, _utc(latest))
    while skipped < SKIP_COUNT_CAP and _ms(older.get_prev(datetime)) > since_ms:
        skipped += 1
    return Plan(latest, skipped)


def at_ms(schedule: Mapping[str, Any]) -> int:
    return parse_iso_ms(schedule["at"])


def plan(trigger: str, schedule: Mapping[str, Any] | None, since_ms: int, now_ms: int) -> Plan:
    """The due time to fire in ``(since_ms, now_ms]`` for an ``interval`` or ``timestamp`` rule.

    A schedule that cannot be read (validation refuses those; a hand-edited row might not)
    plans nothing rather than raising inside the ticker.
    """
    if not isinstance(schedule, Mapping) or now_ms <= since_ms:
        return Plan(None)
    try:
        if trigger == "interval":
            return _cron_plan(str(schedule["cron"]), since_ms, now_ms)
        if trigger == "timestamp":
            due = at_ms(schedule)
            return Plan(due) if since_ms < due <= now_ms else Plan(None)
    except (KeyError, ValueError, TypeError):
        return Plan(None)
    return Plan(None)


def next_due(trigger: str, schedule: Mapping[str, Any] | None, after_ms: int) -> int | None:
    """The next due time after ``after_ms`` (for listings and docs); None when there is none."""
    try:
        if trigger == "interval" and isinstance(schedule, Mapping):
            return cron_due_after(str(schedule["cron"]), after_ms)
        if trigger == "timestamp" and isinstance(schedule, Mapping):
            due = at_ms(schedule)
            return due if due > after_ms else None
    except (KeyError, ValueError, TypeError):
        return None
    return None
