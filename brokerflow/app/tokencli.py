"""``brokerflow token create|list|revoke``: tokens straight in the database (``--db``, else ``BROKERFLOW_DB``).

These work without a running engine: the first admin token has to come from somewhere. A
running engine notices a revocation at its next request (the token repository's revision).
``create`` says on stderr which database it wrote, so a token made in the wrong directory
(``./brokerflow.db`` by default) is not a silent surprise; stdout keeps the token alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from urllib.parse import urlsplit, urlunsplit

from brokerflow.app.adminapi import AdminError, table
from brokerflow.storage.store import open_store


def shown_url(url: str) -> str:
    """The database URL without its password, fit for a terminal or a log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def token_command(args: argparse.Namespace, db_url: str) -> int:
    store = open_store(db_url)
    try:
        if args.token_command == "create":
            token, record = store.tokens.create(args.role, brand=args.brand, name=args.name)
            print(token)
            print(f"brokerflow: token {record['id']} ({args.role}) stored in {shown_url(db_url)}", file=sys.stderr)
        elif args.token_command == "list":
            tokens = store.tokens.list()
            print(json.dumps({"tokens": tokens}, indent=2) if args.json
                  else table(tokens, ("id", "role", "brand", "name", "created_at", "revoked")))
        elif not store.tokens.revoke(args.token_id):
            raise AdminError(f"no live token {args.token_id} in {shown_url(db_url)}")
        else:
            print(f"token {args.token_id} revoked")
    finally:
        store.close()
    return 0
