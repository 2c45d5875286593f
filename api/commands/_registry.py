"""The command registry: a command is a name, a handler and the roles that may run it."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from brokerflow.api.access import READ_ROLES, Principal

if TYPE_CHECKING:
    from brokerflow.api.services import Burst, Services



@dataclass(frozen=True, slots=True)
class CommandContext:
    """What a handler gets besides its params: the caller (``None`` for Ping) and the services.

    ``burst``: the caller is the management API's loop, which runs process commands on its own
    thread and finishes them together when it has served what it read (``Services.Burst``).
    """

    principal: Principal | None
    services: Services
    burst: Burst | None = None


Handler = Callable[[CommandContext, dict[str, Any]], "dict[str, Any] | Future[dict[str, Any]]"]


@dataclass(frozen=True, slots=True)
class Command:
    """``roles`` None: any valid token; ``auth`` False: no token needed at all (Ping)."""

    name: str
    handler: Handler
    roles: frozenset[str] | None
    auth: bool = True


COMMANDS: dict[str, Command] = {}


def command(name: str, roles: frozenset[str] | None = READ_ROLES, auth: bool = True,
            registry: dict[str, Command] | None = None) -> Callable[[Handler], Handler]:
    """Register the decorated handler as ``name`` (in ``COMMANDS`` unless ``registry`` is given)."""
    target = COMMANDS if registry is None else registry

    def register(handler: Handler) -> Handler:
        if name in target:
            raise ValueError(f"command {name} is registered twice")
        target[name] = Command(name, handler, roles, auth)
        return handler

    return register
