"""The automation modes reached through the API (docs/automation.md): before-hooks and manual execution.

``Before`` runs inside the caller's request: the system about to write a customer or account
asks, and gets the record back (possibly changed), ``REJECTED`` or ``ACTION_FAILED``. It runs
the matching rules' actions for real (notifications, webhooks, customer and KYC changes), so it
takes the role that executing actions takes: ``SESSION_ADMIN`` (a scoped one for its brand),
never a read-only role; a hook rule has no ``exec_roles`` to widen that. ``MngExecWorkflowRule``
checks RBAC first — admin, or a role in the rule's ``exec_roles`` — as docs/automation.md says; the
rule's ``run_as`` plays no part in that check.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from brokerflow.api.access import ADMIN_ONLY, READ_ROLES
from brokerflow.api.commands._params import get, invalid
from brokerflow.api.commands._registry import CommandContext, command
from brokerflow.api.commands.reference import require_record_scope
from brokerflow.api.commands.rules import visible_rule
from brokerflow.errors import AccessDenied

RESOURCES = ("customer", "account")
OPERATIONS = ("create", "update")


def _choice(params: dict[str, Any], name: str, allowed: tuple[str, ...]) -> str:
    value = get(params, name, str, required=True)
    if value not in allowed:
        raise invalid(name, f"must be one of {', '.join(allowed)}, got {value[:64]!r}")
    return value


@command("Before", roles=ADMIN_ONLY)
def before(ctx: CommandContext, params: dict[str, Any]) -> dict[str, Any] | Future[dict[str, Any]]:
    resource = _choice(params, "resource", RESOURCES)
    operation = _choice(params, "operation", OPERATIONS)
    record = get(params, "record", dict, required=True)
    require_record_scope(ctx.services.store, ctx.principal, resource, record)
    return ctx.services.before(resource, operation, record, ctx.principal)


@command("MngExecWorkflowRule", roles=READ_ROLES)
def exec_rule(ctx: CommandContext, params: dict[str, Any]) -> Future[dict[str, Any]]:
    rule = visible_rule(ctx, get(params, "id", int, required=True))
    principal = ctx.principal
    exec_roles = rule.get("exec_roles") or []
    if not principal.is_admin and principal.role not in exec_roles:
        raise AccessDenied(f"role {principal.role} may not execute rule {rule['id']}: "
                           "only SESSION_ADMIN and the rule's exec_roles may")
    return ctx.services.exec_rule(rule, params.get("input"), principal)
