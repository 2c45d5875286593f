"""Workflow Machine flow definitions: add, update, delete, list.

Flows carry no brand and every process may use any of them, so they are shared: every token
reads them, only unscoped admins change them. A flow is checked with every other stored flow
in view (subflows must exist; recursion is refused); unhandled child outcomes come back as
warning messages. Write-only webhook header values are masked in every reply and kept when an
update sends ``***``, and a signing secret must be configured, as for rules (PROTOCOL section 10).
"""

from __future__ import annotations

from typing import Any

from brokerflow.api.access import ADMIN_ONLY, require_unscoped
from brokerflow.api.commands._params import get
from brokerflow.api.commands._registry import CommandContext, command
from brokerflow.api.commands._render import with_iso_times
from brokerflow.api.envelope import Reply, message
from brokerflow.errors import Conflict, NotFound, ValidationFailed
from brokerflow.workflow.machine.flows import check_flow, flow_warnings
from brokerflow.workflow.policies.webhook_delivery import keep_masked_flow, mask_flow, unknown_secrets


def _known(ctx: CommandContext) -> dict[str, dict[str, Any]]:
    return {flow["name"]: flow for flow in ctx.services.store.flows.list()}


def _save(ctx: CommandContext, params: dict[str, Any], creating: bool) -> Reply:
    require_unscoped(ctx.principal, "a flow definition")
    flow = get(params, "flow", dict, required=True)
    known = _known(ctx)
    checked = check_flow(flow, known)
    name = checked["name"]
    current = known.get(name)
    checked = keep_masked_flow(checked, current)  # "***" keeps the stored header value
    _check_secrets(ctx, checked)
    if creating and current is not None:
        raise Conflict(f"flow {name!r} exists; change it with MngUpdateFlow",
                       details=[{"path": "flow.name", "message": "exists"}])
    if not creating:
        if current is None:
            raise NotFound(f"flow {name!r} not found; add it with MngAddFlow",
                           details=[{"path": "flow.name", "message": "no such flow"}])
        expected = get(params, "version", int)
        if expected is not None and expected != current.get("version"):
            raise Conflict(f"flow {name!r} is at version {current.get('version')}, not {expected}",
                           details=[{"path": "version", "message": "stale version"}])
    saved = ctx.services.store.flows.save(checked, by=ctx.principal.actor)
    ctx.services.flows_changed(name)
    warnings = [message(f"{w['path']}: {w['message']}") for w in flow_warnings(checked, known)]
    return Reply({"flow": mask_flow(with_iso_times(saved))}, warnings)


def _check_secrets(ctx: CommandContext, flow: dict[str, Any]) -> None:
    """A webhook signing secret a state's action names must be configured (as for rules)."""
    names = set(ctx.services.settings.webhook_secrets)
    problems = [problem for state_name, state in (flow.get("states") or {}).items() if isinstance(state, dict)
                for problem in unknown_secrets(state.get("actions"), names, f"states.{state_name}.actions")]
    if problems:
        raise ValidationFailed("invalid flow: " + "; ".join(f"{p['path']}: {p['message']}" for p in problems),
                               details=problems)


@command("MngAddFlow", roles=ADMIN_ONLY)
def add_flow(ctx: CommandContext, params: dict[str, Any]) -> Reply:
    return _save(ctx, params, creating=True)


@command("MngUpdateFlow", roles=ADMIN_ONLY)
def update_flow(ctx: CommandContext, params: dict[str, Any]) -> Reply:
    return _save(ctx, params, creating=False)


@command("MngDeleteFlow", roles=ADMIN_ONLY)
def delete_flow(ctx: CommandContext, params: dict[str, Any]) -> dict[str, Any]:
    require_unscoped(ctx.principal, "a flow definition")
    name = get(params, "name", str, required=True)
    ctx.services.store.flows.delete(name)
    ctx.services.flows_changed(name)
    return {}


@command("MngGetFlows")
def get_flows(ctx: CommandContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"flows": [mask_flow(with_iso_times(f)) for f in ctx.services.store.flows.list()]}
