"""``brokerflow sink sign ROUTE``: print a signed sink URL (an automation mode, docs/automation.md).

The secret is the one the server uses: ``--secret`` (or ``BROKERFLOW_SECRET``) when given,
else the one kept in the database (``--db``), generated there on first use exactly as the
engine would, so a URL signed before the first start still works after it.
"""

from __future__ import annotations

import argparse
import time

from brokerflow.app.secret import server_secret
from brokerflow.errors import ValidationFailed
from brokerflow.settings import Settings
from brokerflow.workflow.modes.sinks import ANY_METHOD, signed_path

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", ANY_METHOD, "ANY")


def _secret(settings: Settings) -> str:
    if settings.secret:
        return settings.secret
    from brokerflow.storage.store import open_store

    store = open_store(settings.db_url)
    try:
        return server_secret(settings, store.meta)
    finally:
        store.close()


def sign_command(args: argparse.Namespace, settings: Settings, now_s: float | None = None) -> int:
    method = str(args.method or "POST").upper()
    if method not in METHODS:
        raise ValidationFailed(f"--method must be one of {', '.join(METHODS)}",
                               details=[{"path": "method", "message": "unknown HTTP method"}])
    method = ANY_METHOD if method == "ANY" else method
    if args.expires_in is not None and args.expires_in <= 0:
        raise ValidationFailed("--expires-in must be a positive number of seconds",
                               details=[{"path": "expires_in", "message": "must be > 0"}])
    expires = None if args.expires_in is None else int(now_s or time.time()) + args.expires_in
    base = (args.base_url or f"http://{settings.http or '127.0.0.1:8080'}").rstrip("/")
    print(base + signed_path(_secret(settings), args.route, method, expires))
    return 0
