"""The Workflow Machine's eight commands, handed to the engine's process actors.

Any valid token may drive processes (docs/workflow-machine.md); a brand-scoped one only processes of
its brand and customers of its brand, which the process workers check under the pid's lock
(``api.access.ProcessScope``, handed on by ``Services.process``). The reply comes later: the
handler returns the engine's Future, so a process waiting for its mailbox never holds up the socket.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from brokerflow.api.access import ANY_TOKEN
from brokerflow.api.commands._params import get, invalid, no_unknown
from brokerflow.api.commands._registry import CommandContext, command
from brokerflow.workflow.machine.commands import COMMANDS as MACHINE_COMMANDS

PARAMS = ("name", "pid", "input")  # pids are strings; an integer pid is taken as its digits


def _params(params: dict[str, Any]) -> dict[str, Any]:
    no_unknown(params, PARAMS)
    pid = params.get("pid")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, (str, int))):
        raise invalid("pid", f"must be a string or an integer, got {type(pid).__name__}")
    out = {"name": get(params, "name", str), "pid": None if pid is None else str(pid),
           "input": params.get("input")}
    return {k: v for k, v in out.items() if v is not None}


def _register(cmd: str) -> None:
    def handler(ctx: CommandContext, params: dict[str, Any]) -> Future[dict[str, Any]]:
        return ctx.services.process(cmd, _params(params), ctx.principal, burst=ctx.burst)

    command(cmd, roles=ANY_TOKEN)(handler)


for _cmd in MACHINE_COMMANDS:
    _register(_cmd)
