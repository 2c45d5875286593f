"""One frozen settings object, built once by the CLI and passed down through constructors.

Nothing reads the environment at import time; ``Settings.from_env`` is the only place the
``BROKERFLOW_<NAME>`` variables are read, and the CLI calls it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from brokerflow.errors import ValidationFailed

DEFAULT_DB = "sqlite:///brokerflow.db"
DEFAULT_EVENTS_BIND = ("tcp://127.0.0.1:5556",)
DEFAULT_API_BIND = "tcp://127.0.0.1:5557"
DEFAULT_PUB_BIND = "tcp://127.0.0.1:5558"
DEFAULT_HTTP = "127.0.0.1:8080"


# Engine tuning read from the environment (the CLI has a flag for each but the GC threshold):
# (Settings field, variable, int or float, whether 0 is allowed: for gc_gen0 it keeps
# CPython's defaults; the others must be positive).
TUNING_ENV = (
    ("gc_gen0", "BROKERFLOW_GC_GEN0", int, True),
    ("webhook_workers", "BROKERFLOW_WEBHOOK_WORKERS", int, False),
    ("process_workers", "BROKERFLOW_PROCESS_WORKERS", int, False),
    ("process_live_cap", "BROKERFLOW_PROCESS_LIVE_CAP", int, False),
    ("process_idle_s", "BROKERFLOW_PROCESS_IDLE_S", float, False),
    ("ingress_max_inflight", "BROKERFLOW_INGRESS_MAX_INFLIGHT", int, False),
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
    scheduler_interval_s: float = 60.0
    smtp_relay: str | None = None
    smtp_listen: str | None = None
    replay: tuple[str, ...] = ()  # replay endpoints (docs/delivery.md); none: gaps are counted, not recovered
    partitions: int = 64  # customer partitions; checkpoints are kept per source and partition
    shards: int = 1  # serve --shards: engine processes on this machine (docs/scaling.md)
    shard_index: int = 0  # this process's place among shard_count: it owns p % shard_count == shard_index
    shard_count: int = 1
    run_dir: str | None = None  # a shard's ipc endpoints (control, stats) live here; set by the parent
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
    extra: Mapping[str, str] = field(default_factory=dict)

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)

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
                          ("smtp_listen", "BROKERFLOW_SMTP_LISTEN")):
            if key in env:
                values[name] = env[key]
        if "BROKERFLOW_HTTP" in env:
            values["http"] = env["BROKERFLOW_HTTP"] or None
        if env.get("BROKERFLOW_NO_HTTP", "").lower() in ("1", "true", "yes"):
            values["http"] = None
        for name, key, kind, zero_ok in TUNING_ENV:
            if key in env:
                values[name] = tuning_value(key, env[key], kind, zero_ok)
        if "BROKERFLOW_SHARDS" in env:
            values["shards"] = shards_value(env["BROKERFLOW_SHARDS"])
        if "EVENTBUS_SCHEDULER_INTERVAL" in env:
            values["scheduler_interval_s"] = float(env["EVENTBUS_SCHEDULER_INTERVAL"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
