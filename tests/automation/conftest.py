"""A real engine with its front doors on loopback: REP, the waitress gateway, SMTP both ways.

``Auto`` is what a user would have: API clients per role, the HTTP base URL, an SMTP relay
(aiosmtpd, keeping what it receives) that ``email.send`` hands mail to, the engine's SMTP
listener to send mail into, and small webhook receivers (a good one, a failing one, a slow one).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from brokerflow.api.client import ApiClient
from brokerflow.app.engine import Engine
from brokerflow.bus.smtp import SmtpListener
from brokerflow.settings import Settings
from tests.conftest import wait_until

SECRET = "test-sink-secret"
REFERENCE: dict[str, list[dict[str, Any]]] = {
    "Group": [{"group": "real\\alpha", "brand": "alpha", "currency": "USD"},
              {"group": "real\\beta", "brand": "beta", "currency": "USD"}],
    "Manager": [{"id": 7, "name": "Dana", "email": "dana@alpha.example", "enabled": True, "brand": "alpha"},
                {"id": 9, "name": "Bea", "email": "bea@beta.example", "enabled": True, "brand": "beta"}],
    "Customer": [
        {"id": 501, "brand": "alpha", "email": "ana@example.com", "country": "CY", "kyc_status": "pending",
         "kyc_current_level": 0, "risk_level": "low", "status": "active", "assigned_manager_id": 7},
        {"id": 502, "brand": "alpha", "email": "bo@example.com", "country": "DE", "kyc_status": "approved",
         "kyc_current_level": 1, "risk_level": "low", "status": "active", "assigned_manager_id": 7},
        {"id": 503, "brand": "alpha", "email": "cy@example.com", "country": "FR", "kyc_status": "pending",
         "kyc_current_level": 0, "risk_level": "low", "status": "active", "assigned_manager_id": 7},
        {"id": 601, "brand": "beta", "email": "di@example.com", "country": "CY", "kyc_status": "pending",
         "kyc_current_level": 0, "risk_level": "low", "status": "active", "assigned_manager_id": 9},
    ],
    "Account": [{"login": 10001, "group": "real\\alpha", "name": "Ana", "customer_id": 501, "leverage": 100}],
    "KycStepTemplate": [{"brand": "alpha", "step_code": "ID", "level": 1, "required": True, "active": True,
                         "title": "Identity document"}],
}


class RelayHandler:
    """The SMTP relay's inbox: every message ``email.send`` hands over."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "data": envelope.content.decode("utf-8", "replace")})
        return "250 OK"


class Receiver(BaseHTTPRequestHandler):
    """Webhook target: ``/ok`` answers 200, ``/fail`` 500, ``/slow`` after 1.5 s."""

    disable_nagle_algorithm = True
    calls: list[str] = []

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).calls.append(self.path)
        if self.path == "/slow":
            time.sleep(1.5)  # the endpoint under test is slow on purpose
        status = 500 if self.path == "/fail" else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


class Auto:
    def __init__(self, settings: Settings, relay: RelayHandler, hooks_url: str) -> None:
        self.settings, self.relay, self.hooks_url = settings, relay, hooks_url
        self.engine: Engine | None = None
        self.clients: list[ApiClient] = []

    def start(self) -> Auto:
        self.engine = Engine(self.settings).start()
        tokens = self.engine.store.tokens
        self.admin = self.client(tokens.create("SESSION_ADMIN", name="admin")[0])
        self.manager_token = tokens.create("SESSION_MANAGER", name="manager")[0]
        self.manager = self.client(self.manager_token)
        self.admin_token = self.admin.token
        return self

    def client(self, token: str) -> ApiClient:
        client = ApiClient(self.engine.api_endpoint, token, timeout_ms=15_000)
        self.clients.append(client)
        return client

    @property
    def automation(self) -> Any:
        return self.engine.extensions[0]

    @property
    def http(self) -> str:
        return self.engine.http.url

    def load_reference(self) -> None:
        for kind, records in REFERENCE.items():
            for record in records:
                self.admin.call(f"MngUpsert{kind}", {"record": record})

    def add_rule(self, **rule: Any) -> dict[str, Any]:
        rule.setdefault("name", f"{rule['trigger']} rule")
        rule.setdefault("brand", "alpha")
        return self.admin.call("MngAddWorkflowRule", {"rule": rule})["rule"]

    def runs(self, **filters: Any) -> list[dict[str, Any]]:
        return self.admin.call("MngGetWorkflowRunLog", filters)["runs"]

    def wait_runs(self, count: int, **filters: Any) -> list[dict[str, Any]]:
        return wait_until(lambda: (lambda r: r if len(r) >= count else None)(self.runs(**filters)))

    def notifications(self) -> list[dict[str, Any]]:
        return self.engine.store.notifications.list(limit=1000)

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.clients.clear()
        if self.engine is not None:
            self.engine.stop()
            self.engine = None

    def restart(self) -> Auto:
        self.stop()
        return self.start()


@pytest.fixture
def relay() -> Iterator[tuple[RelayHandler, str]]:
    handler = RelayHandler()
    listener = SmtpListener("127.0.0.1:0", lambda _mail: None)
    listener.controller.handler = handler  # the relay keeps raw messages, not parsed ones
    listener.start()
    yield handler, listener.endpoint
    listener.stop()


@pytest.fixture
def hooks() -> Iterator[str]:
    Receiver.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def auto_settings(db_url: str, relay_endpoint: str | None = None, **changes: Any) -> Settings:
    base = Settings(db_url=db_url, events_bind=("tcp://127.0.0.1:0",), api_bind="tcp://127.0.0.1:0",
                    pub_bind="tcp://127.0.0.1:0", http="127.0.0.1:0", webhook_allow=("127.0.0.0/8",),
                    process_workers=1, stop_timeout_s=5.0, scheduler_interval_s=0, secret=SECRET,
                    smtp_relay=relay_endpoint, smtp_listen="127.0.0.1:0")
    return base.with_(**changes)


@pytest.fixture
def make_auto(sqlite_url, relay, hooks) -> Iterator[Any]:
    started: list[Auto] = []

    def make(**changes: Any) -> Auto:
        auto = Auto(auto_settings(changes.pop("db_url", sqlite_url), relay[1], **changes), relay[0], hooks)
        started.append(auto.start())
        auto.load_reference()
        return auto

    yield make
    for auto in started:
        auto.stop()


@pytest.fixture
def auto(make_auto) -> Auto:
    return make_auto()
