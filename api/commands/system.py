"""Commands about the engine itself: liveness, the rule catalog and the counters."""

from __future__ import annotations

from typing import Any

import brokerflow
from brokerflow.api.commands._registry import CommandContext, command
from brokerflow.workflow.catalog import definitions


@command("Ping", roles=None, auth=False)
def ping(ctx: CommandContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"pong": True, "version": brokerflow.__version__}


@command("MngGetWorkflowDefinitions")
def get_definitions(ctx: CommandContext, params: dict[str, Any]) -> dict[str, Any]:
    return definitions()


@command("MngGetStats")
def get_stats(ctx: CommandContext, params: dict[str, Any]) -> dict[str, Any]:
    return ctx.services.stats()
