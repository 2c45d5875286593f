"""``brokerflow relay``: its options (PROTOCOL §7), their ``BROKERFLOW_RELAY_<NAME>`` variables, the run.

Like ``serve``, the command reads flags and the environment here, once, into a frozen
``RelaySettings``; a flag wins over its variable. Repeatable options take a comma-separated
list in their variable. A wrong value stops the command at once with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sqlite3
import threading
from collections.abc import Mapping
from typing import Any

import zmq

from brokerflow.bus.relay import Relay, RelaySettings
from brokerflow.errors import ValidationFailed
from brokerflow.settings import tuning_value

__all__ = ["add_relay", "cmd_relay", "relay_settings"]

log = logging.getLogger("brokerflow")

ENV_PREFIX = "BROKERFLOW_RELAY_"
_LISTS = ("from_connect", "from_bind", "publish_bind", "publish_connect")
_ENV_NAMES = {"from_connect": "FROM"}  # the variable of --from; the others are their option's name


def add_relay(sub: Any) -> None:
    relay = sub.add_parser("relay", help="journal a plain publisher's events, stamp source/seq, re-publish, "
                                         "serve replay (PROTOCOL §7)")
    relay.add_argument("--from", dest="from_connect", action="append", metavar="EP",
                       help="SUB connects here: the upstream publisher binds (repeatable)")
    relay.add_argument("--from-bind", action="append", metavar="EP",
                       help="SUB binds here: upstream publishers connect (repeatable)")
    relay.add_argument("--publish-bind", action="append", metavar="EP",
                       help="PUB binds here: engines --events-connect to it (repeatable)")
    relay.add_argument("--publish-connect", action="append", metavar="EP",
                       help="PUB connects to an engine's --events-bind (repeatable)")
    relay.add_argument("--replay-bind", metavar="EP", help="the replay endpoint (engines' serve --replay)")
    relay.add_argument("--journal", metavar="PATH", help="SQLite journal file (required)")
    relay.add_argument("--source", metavar="NAME", help="stamp source=NAME and the next seq on events that have "
                                                        "no source (without it they are dropped)")
    relay.add_argument("--retain-events", metavar="N", help="events kept per source (default 10,000,000)")
    relay.add_argument("--retain-hours", metavar="H", help="hours an event is kept (default 168)")
    relay.add_argument("--journal-sync", choices=("normal", "full"),
                       help="normal (default): survives kill -9; full: also an OS crash, slower")


def _env(environ: Mapping[str, str], name: str) -> str | None:
    return environ.get(ENV_PREFIX + _ENV_NAMES.get(name, name).upper())


def relay_settings(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> RelaySettings:
    """Flags over ``BROKERFLOW_RELAY_*`` variables; ``ValidationFailed`` naming what is wrong."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name in _LISTS:
        given = getattr(args, name, None)
        text = _env(env, name)
        if given:
            values[name] = tuple(given)
        elif text:
            values[name] = tuple(part.strip() for part in text.split(",") if part.strip())
    for name in ("replay_bind", "journal", "source", "journal_sync"):
        value = getattr(args, name, None) or _env(env, name)
        if value:
            values[name] = value
    for name, kind in (("retain_events", int), ("retain_hours", float)):
        text = getattr(args, name, None) or _env(env, name)
        if text is not None:
            values[name] = tuning_value(f"--{name.replace('_', '-')}", text, kind)
    sync = values.pop("journal_sync", "normal")
    if sync.lower() not in ("normal", "full"):
        raise ValidationFailed(f"{ENV_PREFIX}JOURNAL_SYNC must be normal or full, got {sync!r}")
    return RelaySettings(synchronous=sync.upper(), **_required(values))


def _required(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` when the relay can run with them; else every missing piece in one error."""
    problems = []
    if "journal" not in values:
        problems.append({"path": "--journal", "message": "required: the journal's SQLite file"})
    if not values.get("from_connect") and not values.get("from_bind"):
        problems.append({"path": "--from", "message": "give --from or --from-bind: where the events come from"})
    if not values.get("publish_bind") and not values.get("publish_connect"):
        problems.append({"path": "--publish-bind", "message": "give --publish-bind or --publish-connect"})
    if problems:
        raise ValidationFailed("; ".join(f"{p['path']}: {p['message']}" for p in problems), details=problems)
    return values


def cmd_relay(args: argparse.Namespace) -> int:
    """Run the relay until SIGTERM/SIGINT; exit 0 after closing sockets and journal."""
    settings = relay_settings(args)
    try:
        relay = Relay(settings)
    except zmq.ZMQError as exc:  # an endpoint taken, malformed or unreachable by name
        raise ValidationFailed(f"could not open the relay's sockets: {exc}") from None
    except sqlite3.Error as exc:
        raise ValidationFailed(f"could not open the journal {settings.journal!r}: {exc}") from None
    stop = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        log.info("signal %s: stopping the relay", signal.Signals(signum).name)
        stop.set()

    def dump_stats(_signum: int, _frame: Any) -> None:
        log.info("relay stats: %s", json.dumps(relay.stats()))

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, dump_stats)
    try:
        relay.run(stop)
    finally:
        log.info("relay stopped: %s", json.dumps(relay.stats()))
        relay.close()
    return 0
