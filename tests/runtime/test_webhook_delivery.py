"""Webhooks that arrive (PROTOCOL section 10), through a running engine and real HTTP receivers.

Retries with backoff, one ``Idempotency-Key`` and ``webhook-id`` for every attempt, Standard
Webhooks signatures checked here with ``hmac`` alone, dead letters retried over the API, a
restart in the middle of a backoff, and rule secrets that never come back out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from brokerflow.api.client import ApiClient
from brokerflow.errors import AccessDenied, ValidationFailed
from brokerflow.workflow.policies.webhook_requests import idempotency_key
from tests.conftest import wait_until
from tests.runtime.conftest import notify, webhook

FAST = {"backoff_s": 0.05}  # tests wait milliseconds, not seconds, between attempts


class Scripted:
    """A loopback receiver answering each path from a script: ``plan("/h", [503, 503])`` answers
    503 twice, then ``then`` (200); ``answer_all(code)`` changes what follows. Records everything."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.plans: dict[str, list[int]] = {}
        self.then: dict[str, int] = {}
        self.headers: dict[str, dict[str, str]] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, extra = receiver.answer(self.path)
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers.items()),
                                              "body": body, "status": status, "t": time.monotonic()})
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_PUT = do_POST

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def plan(self, path: str, statuses: list[int], then: int = 200, headers: dict[str, str] | None = None) -> str:
        with self.lock:
            self.plans[path], self.then[path] = list(statuses), then
            self.headers[path] = headers or {}
        return self.url(path)

    def answer_all(self, path: str, status: int) -> None:
        with self.lock:
            self.plans[path], self.then[path] = [], status

    def answer(self, path: str) -> tuple[int, dict[str, str]]:
        with self.lock:
            plan = self.plans.get(path, [])
            status = plan.pop(0) if plan else self.then.get(path, 200)
            return status, (self.headers.get(path, {}) if status != 200 else {})

    def on(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hooks():
    receiver = Scripted()
    yield receiver
    receiver.close()


def key_of(run: dict, index: int) -> str:
    """The Idempotency-Key (and webhook-id) of a run's action: from its bus event when it has one."""
    event = (run["source"], run["seq"], run["rule_id"]) if run.get("source") is not None else None
    return idempotency_key(run["id"], index, event)


def deposit_rule(runtime, actions, **fields):
    return runtime.rule("deposit.created", actions, **fields)


def wait_status(runtime, rule, status: str, timeout_s: float = 15.0) -> dict[str, Any]:
    """The rule's single run once it has ``status``."""
    found: list[dict[str, Any]] = []

    def reached() -> bool:
        runs = runtime.runs(rule_id=rule["id"])
        found[:] = runs
        return len(runs) == 1 and runs[0]["status"] == status

    wait_until(reached, timeout_s)
    return found[0]


def keys(requests: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(r["headers"]["Idempotency-Key"], r["headers"]["webhook-id"]) for r in requests}


# -- retries -----------------------------------------------------------------------------------
def test_503_503_200_is_three_attempts_with_one_key_and_one_success(runtime, hooks):
    url = hooks.plan("/flaky", [503, 503])
    rule = deposit_rule(runtime, [webhook(url, body='{"login": {{trade.login}}}', **FAST),
                                  notify("after the webhook", manager_id=7)])
    runtime.deposit(1001, 50)
    run = wait_status(runtime, rule, "success")
    requests = hooks.on("/flaky")
    assert [r["status"] for r in requests] == [503, 503, 200]
    assert keys(requests) == {(key_of(run, 0), key_of(run, 0))}
    assert {r["body"] for r in requests} == {b'{"login": 1001}'}
    hook, after = run["actions"]
    assert (hook["status"], hook["http_status"], after["status"]) == ("success", 200, "success")
    assert [a.get("http_status") for a in hook["attempts"]] == [503, 503, 200]
    assert all(a["at"].endswith("Z") for a in hook["attempts"])
    assert [n["message"] for n in wait_until(runtime.notifications)] == ["after the webhook"]
    figures = runtime.stats()["webhooks"]
    assert figures["attempts"] == 3 and figures["deliveries"]["success"] == 1
    assert figures["retries_scheduled"] == 2 and figures["pending_retries"] == 0
    assert runtime.stats()["runs"]["success"] == 1


def test_a_run_waiting_on_a_retry_shows_retrying_holds_its_later_actions_and_no_actor(runtime, hooks):
    url = hooks.plan("/down", [], then=503)
    waiting = deposit_rule(runtime, [webhook(url, retries=3, backoff_s=60), notify("never yet", manager_id=7)])
    runtime.engine.deliveries.rand = lambda: 1.0  # the first retry 60 s away, not a random fraction of it
    runtime.deposit(1001, 5)
    run = wait_status(runtime, waiting, "retrying")
    hook, after = run["actions"]
    assert (hook["status"], hook["http_status"], hook["error"]) == ("retrying", 503, "HTTP 503")
    assert len(hook["attempts"]) == 1 and hook["next_attempt_at"].endswith("Z")
    assert after["status"] == "pending"
    # the webhook actor and the pipeline are free: another rule's webhook and notification go through
    other = runtime.rule("withdrawal.created", [webhook(hooks.url("/ok")), notify("other", manager_id=8)])
    runtime.publish("trade.push", {"order": 5, "login": 1001, "cmd": "OP_BALANCE_OUT", "profit": -5.0})
    assert wait_status(runtime, other, "success")["actions"][0]["http_status"] == 200
    assert runtime.engine.drain(5), "a parked run must not keep the engine busy"
    assert [n["message"] for n in runtime.notifications()] == ["other"]
    stats = runtime.stats()
    assert stats["webhooks"]["pending_retries"] == 1
    assert stats["runs"]["logged"] == 1  # the parked run is counted once it ends


def test_a_400_is_final_no_retry_and_no_dead_letter(runtime, hooks):
    url = hooks.plan("/bad", [], then=400)
    rule = deposit_rule(runtime, [webhook(url, **FAST), notify("never", manager_id=7)])
    runtime.deposit(1001, 5)
    run = wait_status(runtime, rule, "failed")
    assert (run["error"], [a["status"] for a in run["actions"]]) == ("HTTP 400", ["failed", "skipped"])
    assert [a["http_status"] for a in run["actions"][0]["attempts"]] == [400]
    runtime.settle()
    time.sleep(0.3)  # far past any 0.05 s backoff: a retry would have come by now
    assert len(hooks.on("/bad")) == 1
    assert runtime.call("MngGetDeadLetters")["dead_letters"] == []
    assert runtime.stats()["webhooks"]["deliveries"]["failed"] == 1


def test_a_redirect_is_final_too(runtime, hooks):
    url = hooks.plan("/moved", [], then=302, headers={"Location": "http://127.0.0.1:1/x"})
    rule = deposit_rule(runtime, [webhook(url, **FAST)])
    runtime.deposit(1001, 5)
    assert "redirect not followed" in wait_status(runtime, rule, "failed")["error"]
    assert len(hooks.on("/moved")) == 1


def test_a_429_is_retried_after_the_retry_after_it_asks_for(runtime, hooks):
    url = hooks.plan("/busy", [429], headers={"Retry-After": "1"})
    rule = deposit_rule(runtime, [webhook(url, **FAST)])
    runtime.deposit(1001, 5)
    wait_status(runtime, rule, "success")
    first, second = hooks.on("/busy")
    assert second["t"] - first["t"] >= 0.95  # not the 0.05 s backoff: the receiver's second


# -- signing -----------------------------------------------------------------------------------
def verify(secret_key: bytes, request: dict[str, Any]) -> bool:
    """A receiver's check, from the Standard Webhooks spec, with nothing but hmac."""
    headers = {k.lower(): v for k, v in request["headers"].items()}
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    signed = f"{msg_id}.{timestamp}.".encode() + request["body"]
    expected = base64.b64encode(hmac.new(secret_key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(part.split(",", 1)[1], expected)
               for part in headers["webhook-signature"].split() if part.startswith("v1,"))


def test_requests_are_signed_as_standard_webhooks_defines_it(make_runtime, hooks):
    from brokerflow.settings import WebhookSecrets

    raw = "partner-signing-secret"
    whsec_key = b"\x00\x01binary key\xff"
    whsec = "whsec_" + base64.b64encode(whsec_key).decode()
    runtime = make_runtime(webhook_secrets=WebhookSecrets({"partner": raw, "crm": whsec}))
    plain = deposit_rule(runtime, [webhook(hooks.plan("/signed", [500]), body='{"amount": {{amount_usd}}}',
                                           secret="partner", **FAST)])
    runtime.deposit(1001, 42)
    wait_status(runtime, plain, "success")
    first, second = hooks.on("/signed")
    for request in (first, second):
        assert verify(raw.encode(), request)
        assert abs(int(request["headers"]["webhook-timestamp"]) - time.time()) < 60
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"]
    runtime.rule("withdrawal.created", [webhook(hooks.plan("/crm", []), body="{}", secret="crm")], name="crm")
    runtime.publish("trade.push", {"order": 6, "login": 1001, "cmd": "OP_BALANCE_OUT", "profit": -1.0})
    [crm] = wait_until(lambda: hooks.on("/crm"))
    assert verify(whsec_key, crm) and not verify(whsec.encode(), crm)  # whsec_: the base64 is the key


def test_unsigned_requests_still_carry_the_webhook_id(runtime, hooks):
    rule = deposit_rule(runtime, [webhook(hooks.plan("/plain", []))])
    runtime.deposit(1001, 1)
    run = wait_status(runtime, rule, "success")
    [request] = hooks.on("/plain")
    assert request["headers"]["webhook-id"] == key_of(run, 0)
    assert "webhook-signature" not in request["headers"]


def test_a_secret_name_that_is_not_configured_is_refused_when_the_rule_is_saved(runtime, hooks):
    with pytest.raises(ValidationFailed) as refused:
        deposit_rule(runtime, [webhook(hooks.url("/x"), secret="nobody")])
    assert refused.value.details[0]["path"] == "actions[0].params.secret"
    assert "nobody" in refused.value.details[0]["message"]
    body = runtime.call("MngValidateWorkflowRule", {"rule": {
        "name": "n", "brand": "alpha", "trigger": "deposit.created",
        "actions": [webhook(hooks.url("/x"), secret="nobody", retries=21, backoff_s=0.001)]}})
    assert {e["path"] for e in body["errors"]} == {"actions[0].params.secret", "actions[0].params.retries",
                                                   "actions[0].params.backoff_s"}


# -- dead letters ------------------------------------------------------------------------------
def test_exhausted_delivery_becomes_a_dead_letter_and_a_retry_after_recovery_delivers_it_once(runtime, hooks):
    url = hooks.plan("/outage?token=tok-12345", [], then=503)
    rule = deposit_rule(runtime, [webhook(url, retries=2, **FAST)])
    runtime.deposit(1001, 5)
    run = wait_status(runtime, rule, "failed")
    assert run["error"] == "HTTP 503" and len(run["actions"][0]["attempts"]) == 3
    [dead] = runtime.call("MngGetDeadLetters")["dead_letters"]
    assert {k: dead[k] for k in ("run_id", "rule_id", "brand", "attempts", "last_error")} == {
        "run_id": run["id"], "rule_id": rule["id"], "brand": "alpha", "attempts": 3, "last_error": "HTTP 503"}
    assert "tok-12345" not in dead["url"] and dead["url"].startswith("http://127.0.0.1:")
    assert dead["created_at"].endswith("Z")
    assert runtime.stats()["webhooks"]["dead_letters"] == 1
    assert runtime.stats()["webhooks"]["deliveries"]["dead_letter"] == 1

    hooks.answer_all("/outage?token=tok-12345", 200)  # the receiver is back
    body = runtime.call("MngRetryDeadLetter", {"id": dead["id"]})
    assert body["status"] == "success" and body["dead_letter"]["attempts"] == 4
    assert body["dead_letter"]["id"] == dead["id"]
    delivered = [r for r in hooks.on("/outage?token=tok-12345") if r["status"] == 200]
    assert len(delivered) == 1 and len(keys(hooks.on("/outage?token=tok-12345"))) == 1  # once, same key
    assert runtime.call("MngGetDeadLetters")["dead_letters"] == []
    assert runtime.stats()["webhooks"]["redelivered"] == 1


def test_a_dead_letter_retry_that_fails_again_keeps_it_and_discard_removes_it(runtime, hooks):
    url = hooks.plan("/gone", [], then=500)
    deposit_rule(runtime, [webhook(url, retries=0)])
    runtime.deposit(1001, 5)
    [dead] = wait_until(lambda: runtime.call("MngGetDeadLetters")["dead_letters"])
    body = runtime.call("MngRetryDeadLetter", {"id": dead["id"]})
    assert (body["status"], body["dead_letter"]["attempts"], body["dead_letter"]["last_error"]) == (
        "failed", 2, "HTTP 500")
    assert runtime.call("MngGetDeadLetters", {"limit": 1})["dead_letters"][0]["attempts"] == 2
    assert runtime.call("MngDiscardDeadLetter", {"id": dead["id"]}) == {}
    assert runtime.call("MngGetDeadLetters")["dead_letters"] == []
    with pytest.raises(Exception) as missing:
        runtime.call("MngRetryDeadLetter", {"id": dead["id"]})
    assert getattr(missing.value, "code", None) == "NOT_FOUND"


def test_dead_letters_follow_roles_and_brand_scope(runtime, hooks):
    deposit_rule(runtime, [webhook(hooks.plan("/nope", [], then=502), retries=0)])
    runtime.deposit(1001, 5)
    [dead] = wait_until(lambda: runtime.call("MngGetDeadLetters")["dead_letters"])
    store = runtime.engine.store
    clients = {}
    for name, role, brand in (("beta", "SESSION_ADMIN", "beta"), ("manager", "SESSION_MANAGER", None)):
        token, _ = store.tokens.create(role, brand=brand, name=name)
        clients[name] = ApiClient(runtime.engine.api_endpoint, token, context=runtime.context)
    try:
        assert clients["beta"].call("MngGetDeadLetters")["dead_letters"] == []
        with pytest.raises(AccessDenied):
            clients["beta"].call("MngGetDeadLetters", {"brand": "alpha"})
        for cmd in ("MngRetryDeadLetter", "MngDiscardDeadLetter"):
            with pytest.raises(AccessDenied):
                clients["beta"].call(cmd, {"id": dead["id"]})
            with pytest.raises(AccessDenied):
                clients["manager"].call(cmd, {"id": dead["id"]})
        assert [d["id"] for d in clients["manager"].call("MngGetDeadLetters")["dead_letters"]] == [dead["id"]]
    finally:
        for client in clients.values():
            client.close()


# -- restart -----------------------------------------------------------------------------------
def test_a_restart_during_the_backoff_delivers_exactly_once(runtime, hooks):
    url = hooks.plan("/restart", [503])
    rule = deposit_rule(runtime, [webhook(url, retries=3, backoff_s=2.0), notify("delivered", manager_id=7)])
    runtime.engine.deliveries.rand = lambda: 1.0  # the retry exactly 2 s after the first attempt
    runtime.deposit(1001, 5)
    parked = wait_status(runtime, rule, "retrying")
    runtime.stop()
    stopped_at = time.monotonic()
    assert len(hooks.on("/restart")) == 1
    runtime.start()
    run = wait_status(runtime, rule, "success")
    requests = hooks.on("/restart")
    assert [r["status"] for r in requests] == [503, 200]
    assert requests[1]["t"] > stopped_at  # sent by the restarted engine, from storage
    assert keys(requests) == {(key_of(parked, 0),) * 2}
    assert run["id"] == parked["id"] and [a["status"] for a in run["actions"]] == ["success", "success"]
    assert [n["message"] for n in wait_until(runtime.notifications)] == ["delivered"]
    runtime.settle()
    assert len(hooks.on("/restart")) == 2 and runtime.stats()["webhooks"]["pending_retries"] == 0


# -- write-only secrets ------------------------------------------------------------------------
SECRETS = {"Authorization": "Bearer sekrit-auth-1", "X-Api-Key": "sekrit-key-2", "Cookie": "sid=sekrit-cookie-3",
           "X-Partner-Token": "sekrit-token-4", "Proxy-Authorization": "Basic sekrit-proxy-5"}


def test_rule_secrets_are_write_only_over_the_api_and_never_logged(make_runtime, hooks, caplog):
    from brokerflow.settings import WebhookSecrets

    signing = "sekrit-signing-6"
    with caplog.at_level(logging.DEBUG):
        runtime = make_runtime(webhook_secrets=WebhookSecrets({"partner": signing}))
        url = hooks.plan("/secret", [503])
        headers = {**SECRETS, "Content-Type": "application/json"}
        added = deposit_rule(runtime, [webhook(url, headers=headers, secret="partner", **FAST)])
        masked = {**dict.fromkeys(SECRETS, "***"), "Content-Type": "application/json"}
        assert added["actions"][0]["params"]["headers"] == masked
        assert runtime.call("MngGetWorkflowRule", {"id": added["id"]})["rule"]["actions"][0]["params"][
            "headers"] == masked
        listed = runtime.call("MngGetWorkflowRules")["rules"]
        dry = runtime.call("MngTestWorkflowRule", {"id": added["id"], "event": {"topic": "trade.push", "payload": {
            "event": "EV_RECORD_ADD", "record": {"order": 1, "login": 1001, "cmd": "OP_BALANCE_IN", "profit": 5}}}})
        assert dry["matched"] and dry["actions"][0]["params"]["headers"] == masked
        # an update that sends the masks back (as an exported rule would) keeps every stored value
        changed = {**added["actions"][0]["params"], "headers": {**masked, "X-Api-Key": "sekrit-new-key-7"}}
        updated = runtime.call("MngUpdateWorkflowRule", {"id": added["id"], "version": added["version"], "rule": {
            "actions": [{"type": "webhook.send", "params": changed}]}})["rule"]
        assert updated["actions"][0]["params"]["headers"] == masked
        runtime.deposit(1001, 5)
        run = wait_status(runtime, added, "success")
        runs = runtime.call("MngGetWorkflowRunLog")["runs"]
    sent = hooks.on("/secret")
    assert len(sent) == 2 and verify(signing.encode(), sent[1])
    for request in sent:
        assert {k: request["headers"][k] for k in SECRETS} == {**SECRETS, "X-Api-Key": "sekrit-new-key-7"}
    shown = str([added, listed, dry, updated, run, runs, runtime.stats()])
    logged = caplog.text + repr(runtime.settings)
    for secret in (*SECRETS.values(), "sekrit-new-key-7", signing):
        assert secret not in shown, secret
        assert secret.split()[-1] not in logged, secret
    assert "attempt 1 of 6 failed (HTTP 503)" in caplog.text  # the attempts were logged (masked), not silenced


def test_adding_a_rule_with_the_mask_and_nothing_stored_is_refused(runtime, hooks):
    with pytest.raises(ValidationFailed) as refused:
        deposit_rule(runtime, [webhook(hooks.url("/x"), headers={"Authorization": "***"})])
    assert refused.value.details[0]["path"] == "actions[0].params.headers.Authorization"
