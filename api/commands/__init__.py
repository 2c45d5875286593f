"""The management API's commands: ``COMMANDS`` maps each ``cmd`` to its handler and roles.

Each module registers its commands with ``@command(name, roles=...)`` when imported; importing
this package imports them all, so ``COMMANDS`` is complete once ``api.commands`` is loaded.
"""

from brokerflow.api.commands import (  # noqa: F401
    automation,
    backtest,
    flows,
    process,
    reference,
    rules,
    runs,
    system,
    webhooks,
)
from brokerflow.api.commands._registry import COMMANDS, Command, CommandContext, Handler, command

__all__ = ["COMMANDS", "Command", "CommandContext", "Handler", "command"]
