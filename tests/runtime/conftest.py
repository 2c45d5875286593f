"""A real engine for the runtime tests: real sockets, a real SQLite file, a real HTTP receiver.

``runtime`` starts ``brokerflow.engine.Engine`` in-process on ephemeral loopback ports. Tests
drive it only from the outside, as users do: events through ``bus.publisher.Publisher``,
rules and reference data through the REP API (``ApiClient``), results through
``MngGetWorkflowRunLog``, a SUB socket on the outbound PUB and the webhook ``receiver``.
Nothing sleeps for an outcome: every wait polls a condition with a deadline (``wait_until``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgpack
import pytest
import zmq

from brokerflow.api.client import ApiClient
from brokerflow.app.engine import Engine
from brokerflow.bus.publisher import Publisher
from brokerflow.settings import Settings
from tests.conftest import wait_until

SLOW_HANG_S = 3.0


# -- the webhook receiver --------------------------------------------------------------------
class Receiver:
    """A stdlib HTTP server on loopback that records every request.

    Paths choose the answer: ``/status/<code>`` answers that code, ``/slow`` hangs until
    ``release`` is set (at most ``SLOW_HANG_S``), anything else answers 200.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.requests: list[dict[str, Any]] = []
        self.arrived: list[dict[str, Any]] = []
        self.release = threading.Event()
        self.host = host
        self.server = _QuietServer((host, 0), _handler(self))
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="test-webhook-receiver", daemon=True)
        self._thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def on(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].split("?")[0] == path]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a timed-out webhook) is expected here, not an error."""


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else each keep-alive reply stalls ~40 ms

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = {"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                       "body": body, "t": time.monotonic()}
            receiver.arrived.append(request)
            path = self.path.split("?")[0]
            status = 200
            if path == "/slow":
                receiver.release.wait(SLOW_HANG_S)
            elif path.startswith("/status/"):
                status = int(path.rsplit("/", 1)[1])
            receiver.requests.append(request)
            payload = b'{"ok": true}'
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

        def log_message(self, *_args: Any) -> None:
            pass

    return Handler


# -- the outbound listener -------------------------------------------------------------------
class OutboundListener:
    """A SUB socket on the engine's outbound PUB that keeps every ``(topic, payload)``."""

    def __init__(self, endpoint: str, context: zmq.Context) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self._sock = context.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"")
        self._sock.connect(endpoint)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-outbound", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._sock.poll(20):
                topic, payload = self._sock.recv_multipart()
                self.messages.append((topic.decode(), msgpack.unpackb(payload, raw=False)))

    def of(self, topic: str) -> list[dict[str, Any]]:
        return [payload for name, payload in list(self.messages) if name == topic]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close(linger=0)


# -- the engine ------------------------------------------------------------------------------
def test_settings(db_url: str, **changes: Any) -> Settings:
    base = Settings(db_url=db_url, events_bind=("tcp://127.0.0.1:0",), api_bind="tcp://127.0.0.1:0",
                    pub_bind="tcp://127.0.0.1:0", http=None, webhook_allow=("127.0.0.0/8",),
                    process_workers=1, stop_timeout_s=5.0)
    return base.with_(**changes)


test_settings.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


class Runtime:
    """One engine and the clients a user would point at it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.context = zmq.Context()
        self.engine: Engine | None = None
        self._publishers: dict[str, Publisher] = {}
        self.api: ApiClient | None = None
        self.outbound: OutboundListener | None = None
        self.sent = 0  # frames published since the last start (``settle`` waits for all of them)
        self._next_seq: dict[str, int] = {}

    # lifecycle
    def start(self) -> Runtime:
        self.engine = Engine(self.settings).start()
        self.sent = 0
        token, _ = self.engine.store.tokens.create("SESSION_ADMIN", name="runtime-tests")
        self.api = ApiClient(self.engine.api_endpoint, token, timeout_ms=10_000, context=self.context)
        self.outbound = OutboundListener(self.engine.outbound.bound_endpoint, self.context)
        assert self.engine.outbound.wait_subscribed(timeout_s=5), "outbound listener never subscribed"
        return self

    @property
    def events_endpoint(self) -> str:
        return self.engine.ingress.bound_endpoints()[0]

    def stop(self) -> None:
        """Stop like SIGTERM does; the clients go with the engine."""
        for source, publisher in self._publishers.items():
            self._next_seq[source] = publisher.next_seq  # a producer continues its numbering
            publisher.close()
        self._publishers.clear()
        if self.api is not None:
            self.api.close()
            self.api = None
        if self.outbound is not None:
            self.outbound.close()
            self.outbound = None
        if self.engine is not None:
            self.engine.stop()

    def restart(self) -> Runtime:
        """A new engine on the same database (fresh ports, as a restarted process gets)."""
        self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()
        self.context.term()

    # the bus
    def publisher(self, source: str = "trading") -> Publisher:
        publisher = self._publishers.get(source)
        if publisher is None:
            publisher = Publisher(self.events_endpoint, source=source, first_seq=self._next_seq.get(source, 1),
                                  context=self.context, linger_ms=0)
            assert publisher.wait_subscribed(timeout_s=5), "the engine never subscribed"
            self._publishers[source] = publisher
        return publisher

    def publish(self, topic: str, record: dict[str, Any], event: str | None = "EV_RECORD_ADD",
                id: str | None = None, source: str = "trading") -> int:
        self.sent += 1
        return self.publisher(source).publish(topic, record, event=event, id=id)

    def publish_raw(self, frames: list[bytes], source: str = "trading") -> None:
        self.sent += 1
        self.publisher(source).publish_raw(frames)

    def deposit(self, login: int, amount: float, id: str | None = None, **record: Any) -> int:
        return self.publish("trade.push", {"order": _next_order(), "login": login, "cmd": "OP_BALANCE_IN",
                                           "profit": amount, **record}, id=id)

    def other_publisher(self, source: str, first_seq: int) -> Publisher:
        """A second producer under an existing ``source`` (a replay, or one that skipped numbers)."""
        publisher = Publisher(self.events_endpoint, source=source, first_seq=first_seq, context=self.context,
                              linger_ms=0)
        assert publisher.wait_subscribed(timeout_s=5), "the engine never subscribed"
        return publisher

    # the management API
    def call(self, cmd: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.api.call(cmd, params or {})

    def rule(self, trigger: str, actions: list[dict[str, Any]], conditions: list[dict[str, Any]] | None = None,
             brand: str = "alpha", **fields: Any) -> dict[str, Any]:
        rule = {"name": fields.pop("name", f"{trigger} rule"), "brand": brand, "trigger": trigger,
                "conditions": conditions or [], "actions": actions, **fields}
        return self.call("MngAddWorkflowRule", {"rule": rule})["rule"]

    def upsert(self, kind: str, record: dict[str, Any]) -> dict[str, Any]:
        return self.call(f"MngUpsert{kind}", {"record": record})["record"]

    def runs(self, **filters: Any) -> list[dict[str, Any]]:
        return self.call("MngGetWorkflowRunLog", {"limit": 1000, **filters})["runs"]

    def wait_runs(self, count: int, timeout_s: float = 10.0, **filters: Any) -> list[dict[str, Any]]:
        """At least ``count`` runs matching ``filters`` (newest first), waiting for them."""
        found: list[dict[str, Any]] = []

        def enough() -> bool:
            found[:] = self.runs(**filters)
            return len(found) >= count

        wait_until(enough, timeout_s)
        return found

    def wait_run(self, rule: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
        """The single run of ``rule``."""
        runs = self.wait_runs(1, timeout_s, rule_id=rule["id"])
        assert len(runs) == 1, runs
        return runs[0]

    def stats(self) -> dict[str, Any]:
        return self.call("MngGetStats")

    def settle(self, timeout_s: float = 10.0) -> None:
        """Wait until everything published so far went all the way through the pipeline.

        First the ingress must have read every frame sent (``bus.received`` of the stats),
        then every actor must be idle with nothing queued or in flight (``Engine.drain``).
        """
        wait_until(lambda: self.stats()["bus"]["received"] >= self.sent, timeout_s)
        assert self.engine.drain(timeout_s), "the engine did not go idle"

    def notifications(self) -> list[dict[str, Any]]:
        return self.outbound.of("notify.manager") if self.outbound else []


_orders = iter(range(10_000, 10_000_000))


def _next_order() -> int:
    return next(_orders)


# -- reference data every test can rely on ---------------------------------------------------
GROUPS = [
    {"group": "real-usd", "brand": "alpha", "currency": "USD"},
    {"group": "real-eur", "brand": "alpha", "currency": "EUR"},
    {"group": "real-jpy", "brand": "alpha", "currency": "JPY"},  # no JPY rate: amount_usd unknown
    {"group": "beta-usd", "brand": "beta", "currency": "USD"},
    {"group": "no-brand", "currency": "USD"},
]
RATES = [{"currency": "EUR", "usd": 1.1}]
MANAGERS = [
    {"id": 7, "name": "Ann", "email": "ann@alpha.test", "enabled": True, "brand": "alpha"},
    {"id": 8, "name": "Bob", "email": "bob@alpha.test", "enabled": True, "brand": "alpha"},
    {"id": 9, "name": "Cid", "email": "cid@alpha.test", "enabled": False, "brand": "alpha"},
    {"id": 10, "name": "Dee", "email": "dee@beta.test", "enabled": True, "brand": "beta"},
]
CUSTOMERS = [
    {"id": 501, "brand": "alpha", "email": "al@example.com", "country": "DE", "language": "de",
     "kyc_status": "none", "kyc_current_level": 0, "risk_level": "low", "status": "active",
     "assigned_manager_id": 8, "manager_id": 7},
    {"id": 502, "brand": "alpha", "email": "bo@example.com", "country": "FR", "language": "fr",
     "kyc_status": "verified", "kyc_current_level": 1, "risk_level": "low", "status": "active",
     "manager_id": 7},
    {"id": 503, "brand": "alpha", "email": "cy@example.com", "country": "GB", "language": "en",
     "kyc_status": "none", "kyc_current_level": 0, "risk_level": "low", "status": "active"},
    {"id": 601, "brand": "beta", "email": "de@example.com", "country": "ES", "language": "es",
     "kyc_status": "none", "kyc_current_level": 0, "risk_level": "low", "status": "active",
     "manager_id": 10},
]
ACCOUNTS = [
    {"login": 1001, "group": "real-usd", "name": "Al", "email": "al@example.com", "country": "DE",
     "enable": True, "leverage": 100, "customer_id": 501},
    {"login": 1002, "group": "real-eur", "name": "Bo", "email": "bo@example.com", "country": "FR",
     "enable": True, "leverage": 50, "customer_id": 502},
    {"login": 1003, "group": "real-usd", "name": "Direct", "email": "mt@example.com", "country": "CY",
     "enable": True, "leverage": 500, "customer_id": None},
    {"login": 1004, "group": "real-jpy", "name": "Cy", "email": "cy@example.com", "country": "GB",
     "enable": True, "leverage": 100, "customer_id": 503},
    {"login": 2001, "group": "beta-usd", "name": "De", "email": "de@example.com", "country": "ES",
     "enable": True, "leverage": 100, "customer_id": 601},
    {"login": 3001, "group": "no-brand", "name": "Nobody", "enable": True},
    {"login": 3002, "group": "unknown-group", "name": "Lost", "enable": True},
]
TEMPLATES = [
    {"brand": "alpha", "step_code": "ID", "level": 1, "required": True, "active": True, "title": "ID document"},
    {"brand": "alpha", "step_code": "POA", "level": 1, "required": True, "active": True, "title": "Address"},
    {"brand": "alpha", "step_code": "SELFIE", "level": 2, "required": True, "active": True, "title": "Selfie"},
    {"brand": "alpha", "step_code": "VIDEO", "level": 1, "required": False, "active": True, "title": "Video"},
    {"brand": "alpha", "step_code": "OLD", "level": 1, "required": True, "active": False, "title": "Retired"},
    {"brand": "beta", "step_code": "ID", "level": 1, "required": True, "active": True, "title": "ID"},
]
WORLD = (("Group", GROUPS), ("Rate", RATES), ("Manager", MANAGERS), ("Customer", CUSTOMERS),
         ("Account", ACCOUNTS), ("KycStepTemplate", TEMPLATES))


def load_world(runtime: Runtime) -> None:
    for kind, records in WORLD:
        for record in records:
            runtime.upsert(kind, {k: v for k, v in record.items() if v is not None})


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def make_runtime(tmp_path) -> Iterator[Any]:
    """``make_runtime(**settings_changes) -> Runtime`` (started, world loaded); all closed after."""
    started: list[Runtime] = []

    def make(world: bool = True, **changes: Any) -> Runtime:
        db = f"sqlite:///{tmp_path / f'engine{len(started)}.db'}"
        runtime = Runtime(test_settings(db, **changes)).start()
        started.append(runtime)
        if world:
            load_world(runtime)
        return runtime

    yield make
    for runtime in started:
        runtime.close()


@pytest.fixture
def runtime(make_runtime) -> Runtime:
    return make_runtime()


def notify(message: str = "hello", manager_id: int | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"message": message}
    if manager_id is not None:
        params["manager_id"] = manager_id
    return {"type": "notify.manager", "params": params}


def webhook(url: str, **params: Any) -> dict[str, Any]:
    return {"type": "webhook.send", "params": {"url": url, **params}}


def body_json(request: dict[str, Any]) -> Any:
    return json.loads(request["body"])
