"""Sink routes over the real HTTP gateway: signatures, provider callbacks, responses, limits."""

from __future__ import annotations

import time

import pytest
import requests

from brokerflow.errors import NotFound
from brokerflow.workflow.modes.sinks import sign, signed_path
from tests.automation.conftest import SECRET
from tests.conftest import wait_until

KYC_ROUTE = "kyc/callback"


def url(auto, route, method="POST", expires=None, secret=SECRET):
    return auto.http + signed_path(secret, route, method, expires)


def ok_rule(auto, route="ping", **changes):
    rule = {"trigger": "sink.request", "run_as": 7,
            "conditions": [{"field": "request.route", "op": "==", "value": route}],
            "actions": [{"type": "sink.respond", "params": {"status": 200, "body": "pong {{request.query.n}}"}}]}
    rule.update(changes)
    return auto.add_rule(**rule)


def test_a_valid_signed_url_runs_the_rule_and_answers_with_sink_respond(auto):
    rule = ok_rule(auto)
    reply = requests.get(url(auto, "ping", "GET") + "&n=3", timeout=10)
    assert (reply.status_code, reply.text) == (200, "pong 3")
    run = auto.wait_runs(1, rule_id=rule["id"])[0]
    assert (run["trigger"], run["run_as"], run["event_id"]) == ("sink.request", 7, "sink:ping")


@pytest.mark.parametrize("tamper", ["signature", "route", "method", "expiry", "missing", "garbage"])
def test_a_tampered_url_is_401_and_runs_nothing(auto, tamper):
    rule = ok_rule(auto)
    good = sign(SECRET, "GET", "ping")
    target = {
        "signature": f"/sink/ping?__sign={good[:-1]}{'0' if good[-1] != '0' else '1'}",
        "route": f"/sink/pong?__sign={good}",
        "method": f"/sink/ping?__sign={sign(SECRET, 'POST', 'ping')}",
        "expiry": f"/sink/ping?__sign={good}&__expires={int(time.time()) + 3600}",
        "missing": "/sink/ping",
        "garbage": "/sink/ping?__sign=not-a-signature",
    }[tamper]
    reply = requests.get(auto.http + target, timeout=10)
    assert reply.status_code == 401 and reply.json()["error"]["code"] == "UNAUTHENTICATED"
    assert "pong" not in reply.text
    auto.engine.drain(1.0)
    assert auto.runs(rule_id=rule["id"]) == []


def test_an_expired_url_is_401_and_an_unexpired_one_works(auto):
    rule = ok_rule(auto)
    expired = requests.get(url(auto, "ping", "GET", expires=int(time.time()) - 5), timeout=10)
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["text"]
    fresh = requests.get(url(auto, "ping", "GET", expires=int(time.time()) + 60), timeout=10)
    assert fresh.status_code == 200
    assert len(auto.wait_runs(1, rule_id=rule["id"])) == 1


def test_a_url_signed_for_any_method_and_a_base64_signature_are_accepted(auto):
    ok_rule(auto)
    assert requests.delete(url(auto, "ping", "*"), timeout=10).status_code == 200
    import base64
    import hashlib
    import hmac
    raw = hmac.new(SECRET.encode(), b"PUT\nping\n", hashlib.sha256).digest()
    b64 = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert requests.put(f"{auto.http}/sink/ping?__sign={b64}", timeout=10).status_code == 200


def _profile_with_steps(auto, customer_id):
    """The KYC actor creates the profile asynchronously: NOT_FOUND until then means 'not yet'."""
    try:
        profile = auto.admin.call("MngGetKycProfile", {"customer_id": customer_id})["profile"]
    except NotFound:
        return None
    return profile if profile["steps"] else None


def test_a_kyc_provider_callback_becomes_a_kyc_step_approval(auto):
    callback = auto.add_rule(
        name="KYC provider callback", trigger="sink.request", run_as=7,
        conditions=[{"field": "request.route", "op": "==", "value": KYC_ROUTE},
                    {"field": "request.body.review_answer", "op": "==", "value": "GREEN"}],
        actions=[{"type": "event.emit", "params": {"topic": "kyc.step.push", "record": {
                     "customer_id": "{{request.body.external_user_id}}", "step_code": "{{request.body.step}}",
                     "level": 1, "status": "approved"}}},
                 {"type": "sink.respond", "params": {"status": 200, "headers": {"Content-Type": "application/json"},
                                                     "body": '{"ok": true}'}}])
    approved = auto.add_rule(trigger="kyc.step.approved",
                             actions=[{"type": "notify.manager",
                                       "params": {"message": "{{kyc.step_code}} approved for {{customer.email}}"}}])
    body = {"external_user_id": 501, "step": "ID", "review_answer": "GREEN", "applicant": "a-17"}
    reply = requests.post(url(auto, KYC_ROUTE), json=body, timeout=10)
    assert (reply.status_code, reply.json(), reply.headers["Content-Type"]) == (200, {"ok": True}, "application/json")
    assert auto.wait_runs(1, rule_id=callback["id"])[0]["status"] == "success"
    assert auto.wait_runs(1, rule_id=approved["id"])[0]["status"] == "success"
    profile = wait_until(lambda: _profile_with_steps(auto, 501))
    assert [(s["step_code"], s["status"]) for s in profile["steps"]] == [("ID", "approved")]
    assert wait_until(auto.notifications)[0]["message"] == "ID approved for ana@example.com"


def test_a_payment_provider_deposit_notification_runs_its_rule(auto):
    rule = auto.add_rule(
        name="PSP deposit", trigger="sink.request", run_as=7,
        conditions=[{"field": "request.route", "op": "==", "value": "psp/deposit"},
                    {"field": "request.headers.x-psp-event", "op": "==", "value": "payment.succeeded"},
                    {"field": "request.body.status", "op": "==", "value": "paid"}],
        actions=[{"type": "notify.manager", "params": {
                     "manager_id": 7, "message": "Deposit {{request.body.amount}} {{request.body.currency}} "
                                                 "for login {{request.body.login}}"}},
                 {"type": "webhook.send", "params": {"url": auto.hooks_url + "/ok", "body": "{{request.body.login}}"}},
                 {"type": "sink.respond", "params": {"status": 201, "body": "received"}}])
    form = {"status": "paid", "amount": "250.00", "currency": "EUR", "login": "10001"}
    reply = requests.post(url(auto, "psp/deposit"), data=form, headers={"X-PSP-Event": "payment.succeeded"}, timeout=10)
    assert (reply.status_code, reply.text) == (201, "received")
    run = auto.wait_runs(1, rule_id=rule["id"])[0]
    assert [a["status"] for a in run["actions"]] == ["success", "success", "success"]
    assert wait_until(auto.notifications)[0]["message"] == "Deposit 250.00 EUR for login 10001"
    # a refund notification matches no rule: 404, nothing runs
    other = requests.post(url(auto, "psp/deposit"), data={**form, "status": "refunded"},
                          headers={"X-PSP-Event": "payment.succeeded"}, timeout=10)
    assert other.status_code == 404


def test_a_failed_sink_run_is_a_500_with_the_error(auto):
    ok_rule(auto, actions=[{"type": "webhook.send", "params": {"url": auto.hooks_url + "/fail"}},
                           {"type": "sink.respond", "params": {"body": "never"}}])
    reply = requests.get(url(auto, "ping", "GET"), timeout=10)
    assert reply.status_code == 500 and "failed" in reply.json()["error"]["text"]


def test_no_respond_action_answers_an_empty_200_and_async_answers_202_at_once(auto):
    rule = ok_rule(auto, actions=[{"type": "notify.manager", "params": {"manager_id": 7, "message": "hit"}}])
    reply = requests.post(url(auto, "ping"), timeout=10)
    assert (reply.status_code, reply.text) == (200, "")
    reply = requests.post(url(auto, "ping") + "&__async=1", timeout=10)
    assert reply.status_code == 202
    assert len(auto.wait_runs(2, rule_id=rule["id"])) == 2


def test_bodies_are_capped_and_bad_json_is_refused(auto):
    rule = ok_rule(auto)
    big = requests.post(url(auto, "ping"), data=b"x" * (300 * 1024), timeout=10)
    assert big.status_code == 400 and "larger than" in big.json()["error"]["text"]
    bad = requests.post(url(auto, "ping"), data=b"{not json", headers={"Content-Type": "application/json"},
                        timeout=10)
    assert bad.status_code == 400
    auto.engine.drain(1.0)
    assert auto.runs(rule_id=rule["id"]) == []


def test_without_a_configured_secret_one_is_generated_once_and_kept(make_auto, sqlite_url):
    auto = make_auto(secret=None)
    secret = auto.engine.secret
    assert secret and secret == auto.engine.store.meta.get("server_secret")
    ok_rule(auto)
    assert requests.get(url(auto, "ping", "GET", secret=secret), timeout=10).status_code == 200
    auto.restart()
    assert auto.engine.secret == secret
    assert requests.get(url(auto, "ping", "GET", secret=secret), timeout=10).status_code == 200
