"""What every admin command shares: where the engine is, the token, one-line errors, tables.

The endpoint is ``--api``, else ``BROKERFLOW_API``, else ``BROKERFLOW_API_BIND`` (what a
``serve`` on this machine was told to bind, a wildcard read as loopback), else the default.
The token is ``--token``, else ``BROKERFLOW_TOKEN``: the variable keeps it out of ``ps``
and the shell's history. A call gets ``TIMEOUT_MS`` to answer; an engine that does not, or
that refuses, ends the command with one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from brokerflow.api.client import ApiClient
from brokerflow.errors import BrokerflowError
from brokerflow.settings import DEFAULT_API_BIND

TIMEOUT_MS = 5000
CELL_MAX = 60

# exit codes: 1 the input (a rules or event file) is wrong, 2 the engine refused, 3 it did not answer
EXIT_INVALID, EXIT_REFUSED, EXIT_UNREACHABLE = 1, 2, 3


class AdminError(Exception):
    """Ends an admin command: ``message`` is the one line printed, ``exit_code`` the status."""

    def __init__(self, message: str, exit_code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def default_api(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    endpoint = env.get("BROKERFLOW_API") or env.get("BROKERFLOW_API_BIND") or DEFAULT_API_BIND
    for wildcard in ("tcp://*:", "tcp://0.0.0.0:"):
        if endpoint.startswith(wildcard):
            return "tcp://127.0.0.1:" + endpoint[len(wildcard):]
    return endpoint


def add_api_options(parser: argparse.ArgumentParser, json_help: str = "print JSON instead of a table") -> None:
    parser.add_argument("--api", metavar="EP", help="management API endpoint (env BROKERFLOW_API, else "
                        f"BROKERFLOW_API_BIND; default {DEFAULT_API_BIND})")
    parser.add_argument("--token", help="API token (env BROKERFLOW_TOKEN keeps it out of ps and shell history)")
    parser.add_argument("--json", action="store_true", help=json_help)


class Admin:
    """One engine's management API as the admin commands use it."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.endpoint = args.api or default_api()
        token = args.token or os.environ.get("BROKERFLOW_TOKEN")
        if not token:
            raise AdminError("no token: pass --token or set BROKERFLOW_TOKEN "
                             "(brokerflow token create --role SESSION_ADMIN makes one)")
        self.client = ApiClient(self.endpoint, token, timeout_ms=TIMEOUT_MS)

    def call(self, cmd: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            return self.client.call(cmd, params or {})
        except TimeoutError:
            raise AdminError(f"the engine at {self.endpoint} did not answer within {TIMEOUT_MS // 1000} s "
                             "(is it running? --api or BROKERFLOW_API names another endpoint)",
                             EXIT_UNREACHABLE) from None
        except BrokerflowError as exc:
            raise AdminError(f"{cmd}: {exc.code}: {exc.text}", EXIT_REFUSED) from None

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(str(value).split())
    return text if len(text) <= CELL_MAX else text[:CELL_MAX - 1] + "…"


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Rows as aligned columns under a header; ``(none)`` for no rows."""
    if not rows:
        return "(none)"
    cells = [[cell(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    lines = ["  ".join(column.upper().ljust(width) for column, width in zip(columns, widths, strict=True))]
    lines += ["  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
              for line in cells]
    return "\n".join(lines)


def print_json(body: Any) -> None:
    print(json.dumps(body, indent=2, ensure_ascii=False, default=str))
