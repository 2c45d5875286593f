"""One frozen settings object, built once by the CLI and passed down through constructors.

Nothing reads the environment at import time; ``Settings.from_env`` is the only place the
``BROKERFLOW_<NAME>`` variables are read, and the CLI calls it.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from brokerflow.errors import ValidationFailed
from brokerflow.workflow.policies.webhook_delivery import parse_secret_option

DEFAULT_DB = "sqlite:///brokerflow.db"
DEFAULT_EVENTS_BIND = ("tcp://127.0.0.1:5556",)
DEFAULT_API_BIND = "tcp://127.0.0.1:5557"
DEFAULT_PUB_BIND = "tcp://127.0.0.1:5558"
DEFAULT_HTTP = "127.0.0.1:8080"


# Engine tuning read from the environment (the CLI has a flag for each but the GC threshold),
# and the retention of the run log:
# (Settings field, variable, int or float, whether 0 is allowed: for gc_gen0 it keeps
# CPython's defaults; the others must be positive).
TUNING_ENV = (
    ("gc_gen0", "BROKERFLOW_GC_GEN0", int, True),
    ("webhook_workers", "BROKERFLOW_WEBHOOK_WORKERS", int, False),
    ("process_workers", "BROKERFLOW_PROCESS_WORKERS", int, False),
    ("process_live_cap", "BROKERFLOW_PROCESS_LIVE_CAP", int, False),
    ("process_idle_s", "BROKERFLOW_PROCESS_IDLE_S", float, False),
    ("ingress_max_inflight", "BROKERFLOW_INGRESS_MAX_INFLIGHT", int, False),
    ("event_retention_hours", "BROKERFLOW_EVENT_RETENTION_HOURS", float, True),
    ("runs_retain_days", "BROKERFLOW_RUNS_RETAIN_DAYS", float, True),
    ("partitions", "BROKERFLOW_PARTITIONS", int, False),
    ("lease_ttl_s", "BROKERFLOW_LEASE_TTL_S", float, False),
)


def tuning_number(text: str, kind: type, zero_ok: bool = False) -> int | float:
    """``text`` as a finite ``kind`` above zero (or at least zero); ValueError saying what is wanted."""
    try:
        value = kind(text)
    except (TypeError, ValueError):
        value = None
    if value is None or not ((0 <= value) if zero_ok else (0 < value)) or not value < float("inf"):  # NaN fails too
        wanted = "a whole number" if kind is int else "a number"
        raise ValueError(f"must be {wanted} {'>= 0' if zero_ok else '> 0'}, got {text!r}")
    return value


def tuning_value(name: str, text: str, kind: type, zero_ok: bool = False) -> int | float:
    """``tuning_number`` for the variable ``name``: ``ValidationFailed`` naming it when wrong."""
    try:
        return tuning_number(text, kind, zero_ok)
    except ValueError as exc:
        raise ValidationFailed(f"{name} {exc}", details=[{"path": name, "message": str(exc)}]) from None


class WebhookSecrets(Mapping[str, str]):
    """Webhook signing secrets, NAME -> SECRET (``serve --webhook-secret``). Never shown: its
    ``repr`` (and so the ``Settings``' own) names the secrets only, so no log line can hold one."""

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._items = dict(items)

    @classmethod
    def parse(cls, entries: Iterable[str], source: str) -> WebhookSecrets:
        """``NAME=SECRET`` entries; ValidationFailed naming ``source`` and the entry, never the secret."""
        items: dict[str, str] = {}
        for index, entry in enumerate(entries, 1):
            try:
                name, secret = parse_secret_option(entry)
            except ValueError as exc:
                raise ValidationFailed(f"{source} entry {index} {exc}",
                                       details=[{"path": source, "message": f"entry {index} {exc}"}]) from None
            items[name] = secret
        return cls(items)

    def __getitem__(self, name: str) -> str:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"WebhookSecrets(names={sorted(self._items)!r})"

    __str__ = __repr__


def check_ca_file(path: str, source: str) -> None:
    """ValidationFailed naming ``source`` unless ``path`` is a PEM bundle TLS can load."""
    try:
        ssl.create_default_context().load_verify_locations(cafile=path)
    except (OSError, ssl.SSLError, ValueError) as exc:
        plain_os_error = isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError) and exc.strerror
        reason = exc.strerror if plain_os_error else "not a PEM certificate bundle"
        raise ValidationFailed(f"{source} {path!r}: {reason}",
                               details=[{"path": source, "message": reason}]) from None


def shards_value(text: str) -> int:
    """``--shards``/``BROKERFLOW_SHARDS``: a whole number from 1, or ``auto`` for the machine's cores."""
    if text.strip().lower() == "auto":
        return max(1, os.cpu_count() or 1)
    return int(tuning_value("BROKERFLOW_SHARDS", text, int))


@dataclass(frozen=True)
class Settings:
    db_url: str = DEFAULT_DB
    events_bind: tuple[str, ...] = DEFAULT_EVENTS_BIND
    events_connect: tuple[str, ...] = ()
    api_bind: str = DEFAULT_API_BIND
    pub_bind: str = DEFAULT_PUB_BIND
    http: str | None = DEFAULT_HTTP
    secret: str | None = None
    webhook_allow: tuple[str, ...] = ()
    webhook_secrets: WebhookSecrets = field(default_factory=WebhookSecrets)  # signing secrets by name
    webhook_ca: str | None = None  # a PEM bundle webhook TLS trusts besides the system bundle
    scheduler_interval_s: float = 60.0
    smtp_relay: str | None = None
    smtp_listen: str | None = None
    replay: tuple[str, ...] = ()  # replay endpoints (docs/delivery.md); none: gaps are counted, not recovered
    partitions: int = 64  # customer partitions; checkpoints are kept per source and partition
    runs_retain_days: float = 90.0  # run log and notifications older than this are trimmed; 0 keeps all
    shards: int = 1  # serve --shards: engine processes on this machine (docs/scaling.md)
    shard_index: int = 0  # this process's place among shard_count: it owns p % shard_count == shard_index
    shard_count: int = 1
    run_dir: str | None = None  # a shard's ipc endpoints (control, stats) live here; set by the parent
    cluster: bool = False  # serve --cluster: partitions shared with every member on this PostgreSQL database
    member: str | None = None  # this member's id in the cluster (default: host-pid-random)
    advertise: str | None = None  # where other members reach this API (default: the bound --api-bind)
    lease_ttl_s: float = 6.0  # a partition lease lives this long without renewal (renewed every second)
    # Engine tuning; defaults are what the benchmark was measured with.
    max_frame_bytes: int = 1_048_576
    events_hwm: int = 1_000_000
    ingress_max_inflight: int = 20_000  # events waiting for the router; then the ingress stops reading
    webhook_workers: int = 16
    runlog_batch_rows: int = 1000
    process_idle_s: float = 60.0
    process_live_cap: int = 1000
    process_workers: int = 8
    loop_depth_limit: int = 3
    stop_timeout_s: float = 8.0
    gc_gen0: int = 50_000  # brokerflow.gcpolicy; 0 keeps CPython's defaults
    checkpoint_interval_s: float = 0.5  # SQLite WAL checkpoints on a thread of their own
    event_retention_hours: float = 168.0  # processed events kept for backtests; 0 keeps none
    extra: Mapping[str, str] = field(default_factory=dict)

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)

    @property
    def shares_the_database(self) -> bool:
        """Do other engine processes write the same database (``--shards``, ``--cluster``)? Then run
        ids come in small, short-lived blocks, so the run log's newest-first order holds across them."""
        return self.shard_count > 1 or self.cluster

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``BROKERFLOW_*`` variables, then explicit ``overrides`` (CLI flags)."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        if "BROKERFLOW_DB" in env:
            values["db_url"] = env["BROKERFLOW_DB"]
        for name, key in (("events_bind", "BROKERFLOW_EVENTS_BIND"),
                          ("events_connect", "BROKERFLOW_EVENTS_CONNECT"),
                          ("webhook_allow", "BROKERFLOW_WEBHOOK_ALLOW"),
                          ("replay", "BROKERFLOW_REPLAY")):
            if key in env:
                values[name] = tuple(p.strip() for p in env[key].split(",") if p.strip())
        for name, key in (("api_bind", "BROKERFLOW_API_BIND"), ("pub_bind", "BROKERFLOW_PUB_BIND"),
                          ("secret", "BROKERFLOW_SECRET"), ("smtp_relay", "BROKERFLOW_SMTP"),
                          ("smtp_listen", "BROKERFLOW_SMTP_LISTEN"), ("webhook_ca", "BROKERFLOW_WEBHOOK_CA"),
                          ("member", "BROKERFLOW_MEMBER"), ("advertise", "BROKERFLOW_ADVERTISE")):
            if key in env:
                values[name] = env[key]
        values.update(_special_env(env))
        for name, key, kind, zero_ok in TUNING_ENV:
            if key in env:
                values[name] = tuning_value(key, env[key], kind, zero_ok)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def _special_env(env: Mapping[str, str]) -> dict[str, object]:
    """The variables with a syntax of their own: secrets, HTTP on/off, shards, the scheduler."""
    values: dict[str, object] = {}
    if "BROKERFLOW_WEBHOOK_SECRET" in env:
        entries = [p.strip() for p in env["BROKERFLOW_WEBHOOK_SECRET"].split(",") if p.strip()]
        values["webhook_secrets"] = WebhookSecrets.parse(entries, "BROKERFLOW_WEBHOOK_SECRET")
    if "BROKERFLOW_HTTP" in env:
        values["http"] = env["BROKERFLOW_HTTP"] or None
    if env.get("BROKERFLOW_NO_HTTP", "").lower() in ("1", "true", "yes"):
        values["http"] = None
    if "BROKERFLOW_SHARDS" in env:
        values["shards"] = shards_value(env["BROKERFLOW_SHARDS"])
    if "BROKERFLOW_CLUSTER" in env:
        values["cluster"] = env["BROKERFLOW_CLUSTER"].strip().lower() in ("1", "true", "yes")
    if "EVENTBUS_SCHEDULER_INTERVAL" in env:
        values["scheduler_interval_s"] = float(env["EVENTBUS_SCHEDULER_INTERVAL"])
    return values
