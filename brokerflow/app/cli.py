"""The ``brokerflow`` command: serve, relay, token create, stats, demo, bench, sink sign.

The CLI is the only place that reads flags and the environment; it builds one frozen
``Settings`` and hands it down.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from brokerflow import __version__
from brokerflow.app import admin, gcpolicy
from brokerflow.app.adminapi import EXIT_INVALID, Admin, AdminError, add_api_options
from brokerflow.app.logs import FORMATS, LEVELS
from brokerflow.app.logs import configure as configure_logging
from brokerflow.errors import ValidationFailed
from brokerflow.settings import Settings, WebhookSecrets, check_ca_file, shards_value, tuning_number
from brokerflow.workflow.rules.as_code import RulesFileError

log = logging.getLogger("brokerflow")

DB_HELP = "peewee database URL (env BROKERFLOW_DB; default sqlite:///brokerflow.db in this directory)"
ROLES = ("SESSION_ADMIN", "SESSION_MANAGER", "SESSION_DEALER", "SESSION_CRM_MANAGER", "SESSION_CRM_ADMIN")


def _add_log_options(parser: argparse.ArgumentParser, level: Any, log_format: Any) -> None:
    """Before the command (``brokerflow --log-format json serve``) or, for serve, after it too."""
    parser.add_argument("--log-level", type=str.upper, choices=LEVELS, metavar="LEVEL", default=level,
                        help="DEBUG, INFO, WARNING or ERROR (env BROKERFLOW_LOG_LEVEL; default INFO, WARNING for demo)")
    parser.add_argument("--log-format", choices=FORMATS, default=log_format,
                        help="text for people, json for log collectors: one object a line with ts, level, "
                             "logger, message and event_id, run_id, rule_id, pid where they apply "
                             "(env BROKERFLOW_LOG_FORMAT; default text)")


def _add_serve(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the engine until SIGINT/SIGTERM")
    _add_log_options(serve, argparse.SUPPRESS, argparse.SUPPRESS)  # given here, they win over the global ones
    serve.add_argument("--db", dest="db_url", help="peewee database URL (default sqlite:///brokerflow.db)")
    serve.add_argument("--events-bind", action="append", help="SUB socket binds here (repeatable)")
    serve.add_argument("--events-connect", action="append", help="SUB socket connects here (repeatable)")
    serve.add_argument("--api-bind", help="REP management API endpoint")
    serve.add_argument("--pub-bind", help="outbound PUB endpoint")
    serve.add_argument("--http", help="HTTP gateway HOST:PORT (default 127.0.0.1:8080)")
    serve.add_argument("--no-http", action="store_true", help="no HTTP gateway")
    serve.add_argument("--secret", help="server secret for signed sink URLs")
    serve.add_argument("--webhook-allow", action="append", help="allowed private webhook network (CIDR)")
    serve.add_argument("--webhook-secret", action="append", type=_secret_entry, metavar="NAME=SECRET",
                       help="a webhook signing secret (repeatable; raw text or whsec_<base64>); "
                            "prefer BROKERFLOW_WEBHOOK_SECRET, command lines are visible to other users")
    serve.add_argument("--webhook-ca", metavar="FILE",
                       help="PEM CA bundle webhook TLS trusts besides the system bundle")
    serve.add_argument("--smtp", dest="smtp_relay", help="SMTP relay HOST:PORT for email.send")
    serve.add_argument("--smtp-listen", help="SMTP listener HOST:PORT for email.received")
    serve.add_argument("--replay", action="append", metavar="EP",
                       help="replay endpoint of a relay or journaling publisher (repeatable): recover gaps and "
                            "resume from the checkpoint after any stop (docs/delivery.md)")
    serve.add_argument("--runs-retain-days", type=_positive(float, zero_ok=True), metavar="D",
                       help="keep the run log and notifications D days (default 90; 0 keeps everything)")
    serve.add_argument("--shards", type=_shards, metavar="N",
                       help="engine processes on this machine, each owning a share of the customers "
                            "(a number or 'auto' for the cores; default 1; docs/scaling.md)")
    serve.add_argument("--cluster", action="store_true", default=None,
                       help="join every other serve --cluster on the same PostgreSQL --db: the partitions are "
                            "shared out through leases there (env BROKERFLOW_CLUSTER=1; docs/scaling.md)")
    serve.add_argument("--partitions", type=_positive(int), metavar="N",
                       help="customer partitions (default 64; every member of a cluster must use the same)")
    serve.add_argument("--member", metavar="NAME",
                       help="this member's id in the cluster (default host-pid-random; env BROKERFLOW_MEMBER)")
    serve.add_argument("--advertise", metavar="EP",
                       help="where the other members reach this engine's --api-bind (default: the bound "
                            "endpoint; needed when it binds 0.0.0.0 or *; env BROKERFLOW_ADVERTISE)")
    serve.add_argument("--lease-ttl-s", type=_positive(float), metavar="S",
                       help="seconds a partition lease lives without renewal (default 6; renewed every second)")
    serve.add_argument("--shard-index", type=int, help=argparse.SUPPRESS)  # set by the --shards parent
    serve.add_argument("--shard-count", type=int, help=argparse.SUPPRESS)
    tuning = serve.add_argument_group("tuning (defaults are what the benchmarks ran with)")
    tuning.add_argument("--webhook-workers", type=_positive(int), metavar="N",
                        help="concurrent webhook requests (default 16; a quarter of them per host)")
    tuning.add_argument("--process-workers", type=_positive(int), metavar="N",
                        help="process worker actors (default 8)")
    tuning.add_argument("--process-live-cap", type=_positive(int), metavar="N",
                        help="active processes kept in memory (default 1000)")
    tuning.add_argument("--process-idle-s", type=_positive(float), metavar="S",
                        help="seconds before an idle process is passivated (default 60)")
    tuning.add_argument("--ingress-max-inflight", type=_positive(int), metavar="N",
                        help="events queued for the router before the ingress stops reading (default 20000)")
    serve.add_argument("--event-retention-hours", type=_positive(float, zero_ok=True), metavar="H",
                       help="hours processed events are kept for MngBacktestWorkflowRule (default 168; 0: none)")


def _secret_entry(text: str) -> str:
    """An argparse type for ``NAME=SECRET``: checked, kept as text; the error never quotes it."""
    from brokerflow.workflow.policies.webhook_delivery import parse_secret_option

    try:
        parse_secret_option(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _shards(text: str) -> int:
    try:
        return shards_value(text)
    except ValidationFailed:
        raise argparse.ArgumentTypeError(f"must be a whole number > 0 or 'auto', got {text!r}") from None


def _positive(kind: type, zero_ok: bool = False) -> Any:
    """An argparse type: ``settings.tuning_number`` above zero (or at least zero), or a usage error."""
    def parse(text: str) -> Any:
        try:
            return tuning_number(text, kind, zero_ok)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = kind.__name__
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="brokerflow", description="Workflow automation for brokerages")
    parser.add_argument("--version", action="version", version=f"brokerflow {__version__}")
    _add_log_options(parser, os.environ.get("BROKERFLOW_LOG_LEVEL"), os.environ.get("BROKERFLOW_LOG_FORMAT", "text"))
    sub = parser.add_subparsers(dest="command", required=True)
    _add_serve(sub)
    from brokerflow.app.relaycli import add_relay

    add_relay(sub)

    token = sub.add_parser("token", help="API tokens").add_subparsers(dest="token_command", required=True)
    create = token.add_parser("create", help="create a token and print it (shown once)")
    create.add_argument("--role", required=True, choices=ROLES, help="what the token may do (PROTOCOL section 3)")
    create.add_argument("--brand", help="the one brand the token sees and touches (default: every brand)")
    create.add_argument("--name", help="a label for people (token list shows it)")
    create.add_argument("--db", dest="db_url", help=DB_HELP)
    listing = token.add_parser("list", help="the tokens (never their values)")
    listing.add_argument("--db", dest="db_url", help=DB_HELP)
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    revoke = token.add_parser("revoke", help="a token stops authenticating, at once")
    revoke.add_argument("token_id", type=int, metavar="ID", help="the token's id (token list shows it)")
    revoke.add_argument("--db", dest="db_url", help=DB_HELP)

    stats = sub.add_parser("stats", help="print a running engine's stats as a table")
    add_api_options(stats, "print the raw JSON body")
    admin.add_parsers(sub)

    sub.add_parser("demo", help="a newcomer's tour on the embedded default")

    bench = sub.add_parser("bench", help="end-to-end benchmark (see docs/benchmarks.md)")
    bench.add_argument("args", nargs=argparse.REMAINDER, help="the benchmark's options (brokerflow bench --help)")

    sink = sub.add_parser("sink", help="signed sink URLs").add_subparsers(dest="sink_command", required=True)
    sign = sink.add_parser("sign", help="print a signed URL for a sink route")
    sign.add_argument("route", help="the sink route, as in the rule's trigger params")
    sign.add_argument("--method", default="POST", help="the HTTP method the URL is good for (default POST)")
    sign.add_argument("--expires-in", type=int, help="seconds the URL stays valid")
    sign.add_argument("--db", dest="db_url", help=DB_HELP + " (where the server secret is kept)")
    sign.add_argument("--secret", help="the server secret, when serve was given --secret")
    sign.add_argument("--base-url", help="gateway base URL (default http://<--http>)")
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("db_url", "api_bind", "pub_bind", "http", "secret", "smtp_relay", "smtp_listen",
                 "webhook_workers", "process_workers", "process_live_cap", "process_idle_s",
                 "ingress_max_inflight", "event_retention_hours", "runs_retain_days", "shards", "cluster",
                 "partitions", "member", "advertise", "lease_ttl_s"):
        if getattr(args, name, None) is not None:
            overrides[name] = getattr(args, name)
    for name in ("events_bind", "events_connect", "webhook_allow", "replay"):
        if getattr(args, name, None):
            overrides[name] = tuple(getattr(args, name))
    if getattr(args, "webhook_secret", None):
        overrides["webhook_secrets"] = WebhookSecrets.parse(args.webhook_secret, "--webhook-secret")
    if getattr(args, "webhook_ca", None):
        overrides["webhook_ca"] = args.webhook_ca
    settings = Settings.from_env(**overrides)
    if getattr(args, "no_http", False):
        settings = settings.with_(http=None)
    if settings.webhook_ca:
        check_ca_file(settings.webhook_ca, "--webhook-ca" if getattr(args, "webhook_ca", None)
                      else "BROKERFLOW_WEBHOOK_CA")
    return settings


def cmd_serve(args: argparse.Namespace) -> int:
    from brokerflow.app.engine import Engine

    stop = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    if getattr(args, "shard_index", None) is not None:
        engine = _shard_engine()
    else:
        settings = settings_from(args)
        if settings.cluster:
            from brokerflow.app.clusterlink import check_cluster_settings

            check_cluster_settings(settings)
        if settings.shards > 1:
            from brokerflow.app.shards import serve_shards

            return serve_shards(settings, stop)
        engine = Engine(settings)

    def dump_stats(_signum: int, _frame: Any) -> None:
        log.info("stats: %s", json.dumps(engine.stats(), default=str))

    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, dump_stats)
    engine.start()
    gcpolicy.apply(engine.settings.gc_gen0)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        engine.stop()
    return 0


def _shard_engine() -> Any:
    """One shard of ``serve --shards``: the parent's settings from the environment, linked to its siblings."""
    import os

    from brokerflow.app.automation import Automation
    from brokerflow.app.engine import Engine
    from brokerflow.app.shardlink import ShardLink
    from brokerflow.app.shards import SETTINGS_ENV, settings_from_env

    settings = settings_from_env(os.environ[SETTINGS_ENV])
    logging.getLogger().handlers[0].setFormatter(logging.Formatter(
        f"%(asctime)s %(levelname)s shard{settings.shard_index} %(name)s: %(message)s"))
    return Engine(settings, [Automation(), ShardLink()])


def cmd_token(args: argparse.Namespace) -> int:
    from brokerflow.app.tokencli import token_command

    return token_command(args, settings_from(args).db_url)


def cmd_stats(args: argparse.Namespace) -> int:
    from brokerflow.api.client import format_stats

    with Admin(args) as api:
        body = api.call("MngGetStats")
    print(json.dumps(body, indent=2) if args.json else format_stats(body))
    return 0


def cmd_demo(_args: argparse.Namespace) -> int:
    from brokerflow.app.demo import run_demo

    return run_demo()


def cmd_bench(args: argparse.Namespace) -> int:
    from brokerflow.app.bench import main as bench_main

    return bench_main(args.args)


def cmd_relay(args: argparse.Namespace) -> int:
    from brokerflow.app.relaycli import cmd_relay as run_relay

    return run_relay(args)


def cmd_sink(args: argparse.Namespace) -> int:
    from brokerflow.app.sinkcli import sign_command

    return sign_command(args, settings_from(args))


COMMANDS = {"serve": cmd_serve, "relay": cmd_relay, "token": cmd_token, "stats": cmd_stats, "demo": cmd_demo,
            "bench": cmd_bench, "sink": cmd_sink, **admin.COMMANDS}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # its own options: argparse's REMAINDER would refuse them
        from brokerflow.app.bench import main as bench_main

        return bench_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    level = (args.log_level or ("WARNING" if args.command == "demo" else "INFO")).upper()
    if level not in LEVELS or args.log_format not in FORMATS:  # a default from the environment is not checked
        parser.error(f"log level {level!r} or format {args.log_format!r} unknown: "
                     f"levels {', '.join(LEVELS)}; formats {', '.join(FORMATS)}")
    configure_logging(level, args.log_format)
    from brokerflow.errors import BrokerflowError

    try:
        return COMMANDS[args.command](args)
    except AdminError as exc:
        print(f"brokerflow: {exc}", file=sys.stderr)
        return exc.exit_code
    except RulesFileError as exc:  # one line, every problem named by file, rule and path
        print(f"brokerflow: nothing applied: {exc.source}: {'; '.join(exc.problems)}", file=sys.stderr)
        return EXIT_INVALID
    except BrokerflowError as exc:
        print(f"brokerflow: {exc.code}: {exc.text}", file=sys.stderr)
        return 2
