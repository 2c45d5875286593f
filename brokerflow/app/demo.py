"""``brokerflow demo``: a newcomer's tour on the embedded default, in one process.

It starts a real engine (SQLite in a temporary folder, loopback sockets on free ports), a
local webhook receiver and an outbound subscriber, loads sample reference data and rules over
the management API, publishes a realistic stream of events with the publisher library, and
prints what fired.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack
import zmq

from brokerflow.api.client import ApiClient, format_stats
from brokerflow.settings import Settings

if TYPE_CHECKING:  # for the annotations only: the demo imports them where it runs, as before
    from brokerflow.app.engine import Engine
    from brokerflow.bus.publisher import Publisher

REFERENCE: dict[str, list[dict[str, Any]]] = {
    "Group": [{"group": "real\\alpha-usd", "brand": "alpha", "currency": "USD"},
              {"group": "real\\alpha-eur", "brand": "alpha", "currency": "EUR"},
              {"group": "real\\beta", "brand": "beta", "currency": "USD"}],
    "Rate": [{"currency": "EUR", "usd": 1.08}],
    "Manager": [{"id": 7, "name": "Dana Desk", "email": "dana@alpha.example", "enabled": True, "brand": "alpha"},
                {"id": 8, "name": "Lee Risk", "email": "lee@alpha.example", "enabled": True, "brand": "alpha"}],
    "Customer": [{"id": 501, "brand": "alpha", "email": "ana@example.com", "country": "CY", "language": "en",
                  "kyc_status": "pending", "kyc_current_level": 0, "risk_level": "low", "status": "active",
                  "assigned_manager_id": 7},
                 {"id": 502, "brand": "alpha", "email": "bo@example.com", "country": "DE", "language": "de",
                  "kyc_status": "approved", "kyc_current_level": 2, "risk_level": "low", "status": "active"}],
    "Account": [{"login": 10001, "group": "real\\alpha-usd", "name": "Ana", "email": "ana@example.com",
                 "country": "CY", "enable": True, "leverage": 100, "customer_id": 501},
                {"login": 10002, "group": "real\\alpha-eur", "name": "Bo", "email": "bo@example.com",
                 "country": "DE", "enable": True, "leverage": 30, "customer_id": 502}],
    "KycStepTemplate": [{"brand": "alpha", "step_code": "ID", "level": 1, "required": True, "active": True,
                         "title": "Identity document"},
                        {"brand": "alpha", "step_code": "POA", "level": 1, "required": True, "active": True,
                         "title": "Proof of address"},
                        {"brand": "alpha", "step_code": "SOF", "level": 2, "required": True, "active": True,
                         "title": "Source of funds"}],
}


def demo_rules(webhook_url: str) -> list[dict[str, Any]]:
    return [
        {"name": "First deposit needs KYC level 1", "brand": "alpha", "trigger": "deposit.created",
         "conditions": [{"field": "amount_usd", "op": ">=", "value": 1},
                        {"field": "customer.kyc_current_level", "op": "<", "value": 1}],
         "actions": [{"type": "kyc.set_required_level", "params": {"level": 1, "reason": "first deposit"}}]},
        {"name": "Big trade: tell the desk and the risk system", "brand": "alpha", "trigger": "trade.opened",
         "priority": 10,
         "conditions": [{"field": "trade.volume", "op": ">=", "value": 1000}],
         "actions": [{"type": "notify.manager", "params": {"message": "Login {{trade.login}} opened "
                                                                      "{{trade.volume}} of {{trade.symbol}}"}},
                     {"type": "webhook.send", "params": {
                         "url": webhook_url, "headers": {"Content-Type": "application/json",
                                                         "Authorization": "Bearer demo-secret-token"},
                         "body": '{"text": "High risk trade", "login": {{trade.login}}}',
                         "timeout_ms": 5000}}]},
        {"name": "Large withdrawal raises the risk level", "brand": "alpha", "trigger": "withdrawal.created",
         "conditions": [{"field": "amount_usd", "op": ">", "value": 5000}],
         "actions": [{"type": "customer.set_risk_level", "params": {"risk_level": "high"}}]},
        {"name": "High risk customers go to their manager", "brand": "alpha", "trigger": "customer.updated",
         "conditions": [{"field": "customer.risk_level", "op": "==", "value": "high"}],
         "actions": [{"type": "notify.manager", "params": {"message": "Customer {{customer.email}} is now "
                                                                      "high risk"}}]},
    ]


def demo_events() -> list[tuple[str, dict[str, Any]]]:
    trade = {"order": 1, "login": 10001, "cmd": "OP_BUY", "volume": 1500, "symbol": "EURUSD",
             "open_price": 1.0812, "close_price": 0.0, "profit": 0.0, "comment": ""}
    return [
        ("trade.push", {"event": "EV_RECORD_ADD", "record": {"order": 2, "login": 10001, "cmd": "OP_BALANCE_IN",
                                                             "profit": 250.0, "comment": "card deposit"}}),
        ("trade.push", {"event": "EV_RECORD_ADD", "record": trade}),
        ("trade.push", {"event": "EV_RECORD_ADD", "record": {**trade, "order": 3, "volume": 10}}),
        ("trade.push", {"event": "EV_RECORD_ADD", "record": {"order": 4, "login": 10002,
                                                             "cmd": "OP_BALANCE_OUT", "profit": -6000.0}}),
        ("trade.push", {"event": "EV_RECORD_CLOSE_TRADE", "record": {**trade, "close_price": 1.0840,
                                                                     "profit": 42.0}}),
        ("trade.push", {"event": "EV_RECORD_ADD", "record": {"order": 5, "login": 99999, "cmd": "OP_BUY",
                                                             "volume": 5000, "symbol": "XAUUSD"}}),
    ]


class _Receiver(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True
    calls: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        self.calls.append({"path": self.path, "body": self.rfile.read(length).decode(),
                           "idempotency_key": self.headers.get("Idempotency-Key")})
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


def _subscribe(endpoint: str) -> tuple[zmq.Socket, list[tuple[str, dict]], threading.Event]:
    socket = zmq.Context.instance().socket(zmq.SUB)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.SUBSCRIBE, b"")
    socket.connect(endpoint)
    received: list[tuple[str, dict]] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            if socket.poll(50):
                topic, payload = socket.recv_multipart()
                received.append((topic.decode(), msgpack.unpackb(payload, raw=False)))
        socket.close(linger=0)

    threading.Thread(target=loop, daemon=True).start()
    return socket, received, stop


def _wait(predicate: Callable[[], object], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def run_demo() -> int:
    from brokerflow.app.engine import Engine
    from brokerflow.bus.publisher import Publisher

    with tempfile.TemporaryDirectory(prefix="brokerflow-demo-") as folder:
        receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
        threading.Thread(target=receiver.serve_forever, daemon=True).start()
        webhook_url = f"http://127.0.0.1:{receiver.server_address[1]}/hooks/risk"
        settings = Settings(db_url=f"sqlite:///{Path(folder) / 'demo.db'}",
                            events_bind=("tcp://127.0.0.1:0",), api_bind="tcp://127.0.0.1:0",
                            pub_bind="tcp://127.0.0.1:0", http="127.0.0.1:0",
                            webhook_allow=("127.0.0.0/8",))
        engine = Engine(settings).start()
        publishers: list[Any] = []
        try:
            def publisher(*args: Any, **kwargs: Any) -> Publisher:
                publishers.append(Publisher(*args, **kwargs))
                return publishers[-1]

            return _tour(engine, webhook_url, publisher)
        finally:
            engine.stop()
            for publisher in publishers:  # after the engine: closed first, the bus would log a dropped peer
                publisher.close()
            receiver.shutdown()


def _tour(engine: Engine, webhook_url: str, publisher_cls: type[Publisher]) -> int:
    token, _ = engine.store.tokens.create("SESSION_ADMIN", name="demo")
    print(f"brokerflow demo: engine up (SQLite, API {engine.api_endpoint})\n")
    _, outbound, stop_sub = _subscribe(engine.outbound.bound_endpoint)
    with ApiClient(engine.api_endpoint, token) as api:
        for kind, records in REFERENCE.items():
            for record in records:
                api.call(f"MngUpsert{kind}", {"record": record})
        print("1. Loaded reference data: groups, accounts, customers, managers, a EUR rate, KYC templates")
        for rule in demo_rules(webhook_url):
            added = api.call("MngAddWorkflowRule", {"rule": rule})["rule"]
            print(f"2. Rule #{added['id']}: {added['name']} ({added['trigger']})")
        events = demo_events()
        publisher = publisher_cls(engine.ingress.bound_endpoints()[0], source="demo-trading")
        publisher.wait_subscribed(timeout_s=5)
        for topic, payload in events:
            publisher.publish(topic, payload["record"], event=payload.get("event"))
        print(f"3. Published {len(events)} events from a trading server; the last one is for login 99999, "
              "an account the engine does not know: no brand, so no rule runs for it (counted as "
              "skipped_no_brand in the stats below)\n")
        _wait(lambda: len(api.call("MngGetWorkflowRunLog")["runs"]) >= 4 and len(_Receiver.calls) >= 1)
        engine.drain(5.0)
        runs = api.call("MngGetWorkflowRunLog", {"limit": 20})["runs"]
        print("Run log (newest first):")
        for run in runs:
            actions = ", ".join(f"{a['type']}={a['status']}" for a in run["actions"])
            print(f"  run {run['id']}: rule {run['rule_id']} on {run['trigger']} -> {run['status']} [{actions}]"
                  + (f" ({run['error']})" if run.get("error") else ""))
        print("\nOutbound bus:")
        for topic, payload in outbound:
            print(f"  {topic}: {json.dumps(payload, default=str)}")
        print("\nWebhook calls received:")
        for call in _Receiver.calls:
            print(f"  POST {call['path']} {call['body']} (Idempotency-Key {call['idempotency_key']})")
        profile = api.call("MngGetKycProfile", {"customer_id": 501})["profile"]
        print(f"\nKYC profile of customer 501: required level {profile['required_level']}, steps "
              + ", ".join(s["step_code"] for s in profile["steps"]))
        _automation_tour(engine, api)
        print("\nStats:\n" + format_stats(api.call("MngGetStats")))
    stop_sub.set()
    return 0


def _automation_tour(engine: Engine, api: ApiClient) -> None:
    """Seed 002 in two steps: a before-hook changes a record about to be written, and a KYC
    provider's callback on a signed sink URL becomes a KYC step approval (docs/automation.md)."""
    import requests

    from brokerflow.workflow.modes.sinks import signed_path

    print("\nAutomation modes:")
    api.call("MngAddWorkflowRule", {"rule": {
        "name": "New customers from CY start at medium risk", "brand": "alpha", "trigger": "customer.beforeCreate",
        "conditions": [{"field": "customer.country", "op": "==", "value": "CY"}],
        "actions": [{"type": "record.set", "params": {"field": "risk_level", "value": "medium"}}]}})
    record = {"id": 503, "brand": "alpha", "email": "cy@example.com", "country": "CY", "risk_level": "low"}
    body = api.call("Before", {"resource": "customer", "operation": "create", "record": record})
    print(f"  before-hook: the CRM asks before creating customer 503 -> risk_level "
          f"{body['record']['risk_level']!r} (changed: {body['changed']})")
    api.call("MngAddWorkflowRule", {"rule": {
        "name": "KYC provider callback", "brand": "alpha", "trigger": "sink.request", "run_as": 7,
        "conditions": [{"field": "request.route", "op": "==", "value": "kyc/callback"},
                       {"field": "request.body.answer", "op": "==", "value": "GREEN"}],
        "actions": [{"type": "event.emit", "params": {"topic": "kyc.step.push", "record": {
                        "customer_id": "{{request.body.customer_id}}", "step_code": "{{request.body.step}}",
                        "level": 1, "status": "approved"}}},
                    {"type": "sink.respond", "params": {"status": 200, "body": "OK"}}]}})
    path = signed_path(engine.secret, "kyc/callback", "POST")
    callback = {"customer_id": 501, "step": "ID", "answer": "GREEN"}
    reply = requests.post(engine.http.url + path, json=callback, timeout=10)
    print(f"  sink: the KYC provider POSTs {json.dumps(callback)} to {path[:40]}... -> {reply.status_code} "
          f"{reply.text}")
    tampered = requests.post(engine.http.url + path.replace("kyc/callback", "kyc/callbacks"), json=callback,
                             timeout=10)
    print(f"  sink: the same signature on another route -> {tampered.status_code} (nothing runs)")

    def steps() -> list[dict[str, Any]]:
        return api.call("MngGetKycProfile", {"customer_id": 501})["profile"]["steps"]

    _wait(lambda: any(s["step_code"] == "ID" and s["status"] == "approved" for s in steps()))
    print("  KYC profile of customer 501 now: " + ", ".join(f"{s['step_code']}={s['status']}" for s in steps()))
    engine.drain(5.0)
    for run in reversed(api.call("MngGetWorkflowRunLog", {"limit": 10})["runs"]):
        if run["trigger"] in ("customer.beforeCreate", "sink.request"):
            actions = ", ".join(f"{a['type']}={a['status']}" for a in run["actions"])
            print(f"  run {run['id']}: {run['trigger']} -> {run['status']} [{actions}]")
