"""The dispatcher on its own: authentication, handler results, Futures and errors."""

from __future__ import annotations

import threading
from concurrent.futures import Future

from brokerflow.api.commands import COMMANDS, Command
from brokerflow.api.dispatcher import Dispatcher


def _dispatcher(services, **handlers):
    extra = {name: Command(name, handler, None) for name, handler in handlers.items()}
    return Dispatcher(services, {**COMMANDS, **extra})


def test_a_handler_future_becomes_a_future_of_the_envelope(services, store):
    token, _ = store.tokens.create("SESSION_DEALER", brand="alpha", name="desk")
    pending: Future = Future()
    seen = []

    def later(ctx, params):
        seen.append((ctx.principal, params))
        return pending

    reply = _dispatcher(services, Later=later).handle({"cmd": "Later", "token": token, "params": None})
    assert isinstance(reply, Future) and not reply.done()
    principal, params = seen[0]
    assert (principal.role, principal.brand, principal.name, params) == ("SESSION_DEALER", "alpha", "desk", {})
    threading.Thread(target=pending.set_result, args=({"ok": 1},)).start()
    assert reply.result(timeout=5) == {"success": True, "body": {"ok": 1}}


def test_a_cancelled_future_becomes_an_internal_envelope(services, store):
    token, _ = store.tokens.create("SESSION_ADMIN")
    pending: Future = Future()
    reply = _dispatcher(services, Later=lambda ctx, params: pending).handle({"cmd": "Later", "token": token})
    pending.cancel()
    assert reply.result(timeout=5)["error"]["code"] == "INTERNAL"


def test_an_unexpected_exception_is_internal_without_its_text(services, store):
    token, _ = store.tokens.create("SESSION_ADMIN")

    def crash(ctx, params):
        raise ZeroDivisionError("secret detail")

    reply = _dispatcher(services, Crash=crash).handle({"cmd": "Crash", "token": token})
    assert reply["error"]["code"] == "INTERNAL"
    assert "secret detail" not in reply["error"]["text"]


def test_authentication_comes_after_the_command_is_known(services):
    dispatcher = Dispatcher(services)
    assert dispatcher.handle({"cmd": "Nope"})["error"]["code"] == "UNKNOWN_COMMAND"
    assert dispatcher.handle({"cmd": "MngGetStats"})["error"]["code"] == "UNAUTHENTICATED"
    assert dispatcher.handle({"cmd": "Ping"})["body"]["pong"] is True
    assert dispatcher.authenticate(None) is None
    assert dispatcher.authenticate("bf_nothing") is None
