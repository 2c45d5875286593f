"""The web console at ``/console``: read-only pages for people, server-rendered, no JavaScript.

Every page calls the management commands through the gateway's ``Dispatcher`` with the
signed-in token, so what a page shows is exactly what that token may read (a brand-scoped
token sees its brand only). Jinja escapes everything it renders (rule names, messages and
webhook bodies are anybody's text); the responses carry a strict Content-Security-Policy
(no script at all, styles from this server only), ``no-store`` and ``nosniff``.

Sign-in: a form posts the token; the session lives on the server (``sessions``) and the
browser holds only a random id in an HttpOnly, SameSite=Strict cookie scoped to ``/console``.
Both forms carry a CSRF value: sign-in a double-submit cookie, sign-out the session's own.
"""

from __future__ import annotations

from flask import Blueprint

from brokerflow.api.console.views import Console

__all__ = ["make_console"]


def make_console(dispatcher: object, services: object, timeout_s: float) -> Blueprint:
    """The console's blueprint, mounted at ``/console`` by the gateway."""
    return Console(dispatcher, services, timeout_s).blueprint()
