"""The run log, newest first, filtered and paged; a brand-scoped token sees its brand's runs.

Header values an action reports (a ``sink.respond``'s) are write-only like the rule's own:
shown as ``***`` (PROTOCOL section 10)."""

from __future__ import annotations

from typing import Any

from brokerflow.api.access import scope_filter
from brokerflow.api.commands._params import get, invalid, no_unknown
from brokerflow.api.commands._registry import CommandContext, command
from brokerflow.api.commands._render import with_iso_times
from brokerflow.workflow.policies.webhook_delivery import mask_run

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


@command("MngGetWorkflowRunLog")
def run_log(ctx: CommandContext, params: dict[str, Any]) -> dict[str, Any]:
    no_unknown(params, ("rule_id", "brand", "status", "limit", "before_id"))
    limit = get(params, "limit", int, default=DEFAULT_LIMIT)
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid("limit", f"must be between 1 and {MAX_LIMIT}, got {limit}")
    runs = ctx.services.store.runs.list(
        rule_id=get(params, "rule_id", int),
        brand=scope_filter(ctx.principal, get(params, "brand", str)),
        status=get(params, "status", str),
        limit=limit,
        before_id=get(params, "before_id", int),
    )
    return {"runs": [mask_run(with_iso_times(run)) for run in runs]}
