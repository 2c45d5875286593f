"""``serve --shards N``: N engine processes on this machine behind one set of endpoints.

The parent owns the public endpoints and runs no engine; every shard is a full engine owning
every N-th customer partition (``workflow.partitions``, docs/scaling.md):

- events: a C-level ``zmq.proxy`` (XSUB bound and connected where ``serve`` would be → XPUB at
  ``ipc://<run_dir>/events``) feeds every shard; each decodes everything (the codec's checks run
  in every process) and runs what it owns. No GIL is involved in the fan-out.
- outbound: each shard's PUB binds ``ipc://<run_dir>/pub-<i>``; a second proxy (XSUB connected
  to all → XPUB at the public ``pub_bind``) merges them.
- management API: ``api.broker.ApiBroker`` (a thread here) forwards each request to one shard's
  API at ``ipc://<run_dir>/api-<i>``: by pid for the Workflow Machine, else round-robin.
- HTTP gateway and SMTP listener: shard 0 only; a Workflow Machine command over HTTP for a pid
  another shard owns goes to that shard's API (``app.shardlink``).

The public events endpoint opens only once every shard has subscribed, so nothing published
after ``serve`` is ready misses a shard. A shard that exits is started again (counted in
the log); with ``--replay`` it resumes from its partitions' checkpoints. SIGTERM/SIGINT: every
shard gets SIGTERM and has ``stop_timeout_s`` to stop; then the proxies close and the parent exits 0.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import zmq

from brokerflow.api.broker import ApiBroker
from brokerflow.app.shardlink import api_endpoint
from brokerflow.bus.ingress import FRAME_CAP_FACTOR
from brokerflow.errors import BrokerflowError
from brokerflow.settings import Settings, WebhookSecrets

log = logging.getLogger("brokerflow.shards")

SETTINGS_ENV = "BROKERFLOW_SHARD_SETTINGS"  # the parent's Settings as JSON, for its shards
READY_TIMEOUT_S = 60.0
RESTART_BACKOFF_S = 1.0  # a shard that keeps dying is started at most once a second
STOP_MARGIN_S = 1.5  # of the protocol's 10 s: the parent's own closing after the shards stopped


# -- settings over the process boundary ----------------------------------------------------------
def settings_to_env(settings: Settings) -> str:
    """The parent's Settings as JSON for its shards' environment (readable only by this user,
    as the ``BROKERFLOW_WEBHOOK_SECRET`` variable the secrets may have come from)."""
    values = {item.name: getattr(settings, item.name) for item in dataclasses.fields(Settings)}
    values["webhook_secrets"] = dict(settings.webhook_secrets)
    values["extra"] = dict(settings.extra)
    return json.dumps(values)


def settings_from_env(text: str) -> Settings:
    """The parent's Settings back from JSON (lists were tuples, the secrets a ``WebhookSecrets``)."""
    values: dict[str, Any] = json.loads(text)
    for item in dataclasses.fields(Settings):
        if isinstance(values.get(item.name), list):
            values[item.name] = tuple(values[item.name])
    values["webhook_secrets"] = WebhookSecrets(values.get("webhook_secrets") or {})
    return Settings(**values)


def shard_settings(settings: Settings, index: int, run_dir: str) -> Settings:
    """What shard ``index`` runs with: the parent's settings, its endpoints on the run directory."""
    return settings.with_(
        shards=1, shard_index=index, shard_count=settings.shards, run_dir=run_dir,
        events_bind=(), events_connect=(f"ipc://{run_dir}/events",),
        api_bind=api_endpoint(run_dir, index), pub_bind=f"ipc://{run_dir}/pub-{index}",
        http=settings.http if index == 0 else None, smtp_listen=settings.smtp_listen if index == 0 else None)


# -- proxies ------------------------------------------------------------------------------------
class Proxy:
    """``zmq.proxy_steerable`` on a thread of its own; ``stop`` terminates it through its control pipe."""

    def __init__(self, name: str, frontend: zmq.Socket, backend: zmq.Socket, context: zmq.Context) -> None:
        self.name, self.frontend, self.backend = name, frontend, backend
        address = f"inproc://brokerflow-proxy-{name}-{id(self)}"
        self._control = context.socket(zmq.PAIR)
        self._control.bind(address)
        self._peer = context.socket(zmq.PAIR)
        self._peer.connect(address)
        self._thread = threading.Thread(target=self._run, name=f"brokerflow-proxy-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            zmq.proxy_steerable(self.frontend, self.backend, None, self._peer)
        except zmq.ZMQError as exc:
            if exc.errno != zmq.ETERM:
                log.exception("%s proxy failed", self.name)
        finally:
            for sock in (self.frontend, self.backend, self._peer):
                sock.close(linger=0)

    def stop(self) -> None:
        self._control.send(b"TERMINATE")
        self._thread.join(timeout=5)
        self._control.close(linger=0)


def _events_front(settings: Settings, context: zmq.Context) -> zmq.Socket:
    """The public events side: an XSUB where ``serve`` would put its SUB, with the same caps."""
    sock = context.socket(zmq.XSUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, settings.events_hwm)
    sock.setsockopt(zmq.MAXMSGSIZE, settings.max_frame_bytes * FRAME_CAP_FACTOR)
    for endpoint in settings.events_bind:
        sock.bind(endpoint)
    for endpoint in settings.events_connect:
        sock.connect(endpoint)
    return sock


def _wait_subscribed(xpub: zmq.Socket, count: int, alive: Any, timeout_s: float) -> None:
    """Until ``count`` subscriptions reached ``xpub`` (XPUB_VERBOSE: one per shard)."""
    seen = 0
    deadline = time.monotonic() + timeout_s
    while seen < count:
        if time.monotonic() > deadline:
            raise BrokerflowError(f"only {seen} of {count} shards subscribed within {timeout_s:.0f}s")
        alive()
        if xpub.poll(100):
            if xpub.recv()[:1] == b"\x01":
                seen += 1


# -- the parent ---------------------------------------------------------------------------------
class ShardParent:
    """Starts, watches and stops the shards; owns the proxies and the API broker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.count = settings.shards
        self.run_dir = tempfile.mkdtemp(prefix="brokerflow-")  # short: ipc paths are capped near 100 bytes
        self.context = zmq.Context()
        self.children: list[subprocess.Popen | None] = [None] * self.count
        self.started_at = [0.0] * self.count
        self.restarts = 0
        self.proxies: list[Proxy] = []
        self.broker: ApiBroker | None = None
        self._broker_stop = threading.Event()
        self._broker_thread: threading.Thread | None = None

    def start(self) -> ShardParent:
        self._prepare_storage()
        events_out = self.context.socket(zmq.XPUB)
        events_out.setsockopt(zmq.LINGER, 0)
        events_out.setsockopt(zmq.SNDHWM, self.settings.events_hwm)
        events_out.setsockopt(zmq.XPUB_VERBOSE, 1)
        events_out.bind(f"ipc://{self.run_dir}/events")
        for index in range(self.count):
            self._spawn(index)
        _wait_subscribed(events_out, self.count, self._check_starting, READY_TIMEOUT_S)
        pub_in = self.context.socket(zmq.XSUB)
        pub_in.setsockopt(zmq.LINGER, 0)
        for index in range(self.count):
            pub_in.connect(f"ipc://{self.run_dir}/pub-{index}")
        pub_out = self.context.socket(zmq.XPUB)
        pub_out.setsockopt(zmq.LINGER, 500)
        pub_out.bind(self.settings.pub_bind)
        self.proxies.append(Proxy("outbound", pub_in, pub_out, self.context))
        self.broker = ApiBroker(self.settings.api_bind, [api_endpoint(self.run_dir, i) for i in range(self.count)],
                                self.settings.partitions, self.settings.max_frame_bytes, self.context)
        self._broker_thread = threading.Thread(target=self.broker.run, args=(self._broker_stop,),
                                               name="brokerflow-api-broker", daemon=True)
        self._broker_thread.start()
        events_in = _events_front(self.settings, self.context)
        events_in.send(b"\x01")  # the shards' subscriptions were read above: every shard takes every topic
        self.proxies.append(Proxy("events", events_in, events_out, self.context))
        log.info("brokerflow serving with %d shards: events=%s api=%s pub=%s http=%s (shard 0)", self.count,
                 ",".join((*self.settings.events_bind, *self.settings.events_connect)), self.broker.endpoint,
                 self.settings.pub_bind, self.settings.http or "off")
        return self

    def _prepare_storage(self) -> None:
        """Migrate and make the server secret once, here: N shards doing it at once would race."""
        from brokerflow.app.secret import server_secret
        from brokerflow.storage.store import open_store

        store = open_store(self.settings.db_url)
        try:
            server_secret(self.settings, store.meta)
        finally:
            store.close()

    def _spawn(self, index: int) -> None:
        env = {**os.environ, SETTINGS_ENV: settings_to_env(shard_settings(self.settings, index, self.run_dir))}
        argv = [sys.executable, "-m", "brokerflow"]
        if logging.getLogger().level:
            argv += ["--log-level", logging.getLevelName(logging.getLogger().level)]
        argv += ["serve", "--shard-index", str(index), "--shard-count", str(self.count)]
        self.children[index] = subprocess.Popen(argv, env=env, preexec_fn=_die_with_parent,  # noqa: PLW1509
                                                start_new_session=True)  # SIGINT of a terminal: the parent decides
        self.started_at[index] = time.monotonic()
        log.info("shard %d/%d started: pid %d", index, self.count, self.children[index].pid)

    def _check_starting(self) -> None:
        for index, child in enumerate(self.children):
            if child is not None and child.poll() is not None:
                raise BrokerflowError(f"shard {index} exited with {child.returncode} while starting")

    def watch(self, stop: threading.Event, interval_s: float = 0.2) -> None:
        """Until ``stop``: start again any shard that exited."""
        while not stop.wait(interval_s):
            for index, child in enumerate(self.children):
                if child is None or child.poll() is None:
                    continue
                if time.monotonic() - self.started_at[index] < RESTART_BACKOFF_S:
                    continue
                self.restarts += 1
                log.warning("shard %d (pid %d) exited with %s; starting it again (restart %d of this parent)",
                            index, child.pid, child.returncode, self.restarts)
                self._spawn(index)

    def stop(self) -> None:
        """SIGTERM to every shard, wait ``stop_timeout_s``, kill what is left, close the proxies."""
        started = time.monotonic()
        for child in self.children:
            if child is not None and child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = started + max(1.0, min(self.settings.stop_timeout_s, 10.0 - STOP_MARGIN_S))
        for index, child in enumerate(self.children):
            if child is None:
                continue
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("shard %d did not stop in time; killing it", index)
                child.kill()
                child.wait(timeout=2)
        self._broker_stop.set()
        if self._broker_thread is not None:
            self._broker_thread.join(timeout=2)
        for proxy in self.proxies:
            proxy.stop()
        self.context.destroy(linger=0)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        log.info("brokerflow shards stopped in %.2fs (%d restart(s))", time.monotonic() - started, self.restarts)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies (Linux), so no shard outlives it."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - elsewhere the shards notice on their own
        pass


def serve_shards(settings: Settings, stop: threading.Event) -> int:
    parent = ShardParent(settings)
    try:
        parent.start()
        parent.watch(stop)
    finally:
        parent.stop()
    return 0
