"""Request dict in, envelope out: authenticate, authorize, run the handler, map its errors.

Both front doors (the ZeroMQ server and the HTTP gateway) go through here, so a command
behaves the same whichever way it arrives. A handler may answer later with a ``Future``; the
dispatcher then answers with a ``Future`` of the envelope and never waits itself.

A token's principal is remembered for a few seconds (``access.PrincipalCache``): a revocation
through this engine's store counts at once, one made by another process within 5 s.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from brokerflow.api import access, envelope
from brokerflow.api.access import Principal, PrincipalCache
from brokerflow.api.commands import COMMANDS, Command, CommandContext
from brokerflow.api.services import Burst, Services
from brokerflow.errors import UnknownCommand


class Dispatcher:
    def __init__(self, services: Services, commands: Mapping[str, Command] | None = None,
                 principals: PrincipalCache | None = None) -> None:
        self.services = services
        self.commands = COMMANDS if commands is None else commands
        self.principals = PrincipalCache() if principals is None else principals

    def handle(self, request: Mapping[str, Any],
               burst: Burst | None = None) -> dict[str, Any] | Future[dict[str, Any]]:
        """``request`` as ``framing.decode_request`` returns it: ``{"cmd", "token", "params"}``.

        ``burst``: the caller's loop finishes some commands together (``services.Burst``). A
        handler's Future that is already done is answered at once, without a second Future.
        """
        try:
            command = self.commands.get(request.get("cmd"))
            if command is None:
                raise UnknownCommand(f"unknown command {str(request.get('cmd'))[:64]!r}")
            principal = self.authenticate(request.get("token")) if command.auth else None
            access.check(principal, command)
            context = CommandContext(principal, self.services, burst)
            result = command.handler(context, dict(request.get("params") or {}))
        except Exception as exc:  # every failure becomes an envelope; failure() logs the unexpected
            return envelope.failure(exc)
        if isinstance(result, Future):
            if result.done():
                return _envelope_of(result)
            return _envelope_future(result)
        return envelope.wrap(result)

    def authenticate(self, token: str | None) -> Principal | None:
        """The token's principal, or ``None`` for a missing or unknown token."""
        if not token:
            return None
        tokens = self.services.store.tokens
        return self.principals.principal(token, tokens.revision, self._load)

    def _load(self, token: str) -> Principal | None:
        record = self.services.store.tokens.authenticate(token)
        return Principal.from_token(record) if record else None


def _envelope_of(done: Future[dict[str, Any]]) -> dict[str, Any]:
    try:
        return envelope.wrap(done.result())
    except BaseException as exc:  # includes CancelledError
        return envelope.failure(exc)


def _envelope_future(result: Future[dict[str, Any]]) -> Future[dict[str, Any]]:
    """A Future of the envelope that completes when the handler's Future does."""
    out: Future[dict[str, Any]] = Future()
    out.set_running_or_notify_cancel()

    def done(fut: Future[dict[str, Any]]) -> None:
        out.set_result(_envelope_of(fut))

    result.add_done_callback(done)
    return out
