"""E-mail over real SMTP on loopback: mail received by the listener, mail sent through the relay."""

from __future__ import annotations

import smtplib
import socket
from email.message import EmailMessage

import pytest

from brokerflow.bus.smtp import SmtpListener, split_endpoint
from tests.conftest import wait_until


def send_mail(endpoint: str, to: str, subject: str, body: str, sender: str = "client@example.com") -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message.set_content(body)
    host, port = split_endpoint(endpoint)
    with smtplib.SMTP(host, port, timeout=10) as client:
        client.send_message(message)


def test_a_received_mail_runs_its_email_received_rule(auto):
    rule = auto.add_rule(trigger="email.received",
                         conditions=[{"field": "email.to", "op": "contains", "value": "support@alpha.example"},
                                     {"field": "email.subject", "op": "starts_with", "value": "Withdrawal"}],
                         actions=[{"type": "notify.manager", "params": {
                             "manager_id": 7, "message": "mail from {{email.from}}: {{email.subject}}"}}])
    other_brand = auto.add_rule(trigger="email.received", brand="beta",
                                conditions=[{"field": "email.to", "op": "contains", "value": "@beta.example"}],
                                actions=[{"type": "notify.manager", "params": {"message": "beta mail"}}])
    send_mail(auto.automation.listener.endpoint, "support@alpha.example", "Withdrawal request", "Please send my money.")
    run = auto.wait_runs(1, rule_id=rule["id"])[0]
    assert (run["trigger"], run["status"]) == ("email.received", "success")
    assert wait_until(auto.notifications)[0]["message"] == "mail from client@example.com: Withdrawal request"
    auto.engine.drain(1.0)
    assert auto.runs(rule_id=other_brand["id"]) == []


def test_email_send_goes_through_the_relay_and_runs_the_email_sent_rule(auto):
    sender = auto.add_rule(trigger="manual",
                           actions=[{"type": "email.send", "params": {
                               "to": "{{input.to}}", "subject": "Your KYC", "body": "Dear {{input.name}}, welcome."}}])
    on_sent = auto.add_rule(trigger="email.sent",
                            conditions=[{"field": "email.subject", "op": "==", "value": "Your KYC"}],
                            actions=[{"type": "notify.manager",
                                      "params": {"manager_id": 7, "message": "sent to {{email.to}}"}}])
    body = auto.admin.call("MngExecWorkflowRule", {"id": sender["id"], "input": {"to": "ana@example.com",
                                                                                 "name": "Ana"}})
    assert body["run"]["status"] == "success" and body["trace"][0]["result"] == {"to": "ana@example.com"}
    mail = wait_until(lambda: auto.relay.messages)[0]
    assert mail["to"] == ["ana@example.com"]
    assert "Subject: Your KYC" in mail["data"] and "Dear Ana, welcome." in mail["data"]
    run = auto.wait_runs(1, rule_id=on_sent["id"])[0]
    assert run["trigger"] == "email.sent"
    assert wait_until(auto.notifications)[0]["message"] == "sent to ana@example.com"


def test_email_send_without_a_relay_fails_the_run(make_auto):
    auto = make_auto(smtp_relay=None)
    rule = auto.add_rule(trigger="manual", actions=[{"type": "email.send", "params": {"to": "a@b.c", "subject": "s"}}])
    body = auto.admin.call("MngExecWorkflowRule", {"id": rule["id"], "input": {}})
    assert body["run"]["status"] == "failed" and "no SMTP relay" in body["run"]["error"]


def test_a_relay_that_is_down_fails_the_run_with_a_short_reason(make_auto):
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        auto = make_auto(smtp_relay=f"127.0.0.1:{closed.getsockname()[1]}")
        rule = auto.add_rule(trigger="manual",
                             actions=[{"type": "email.send", "params": {"to": "a@b.c", "subject": "s"}}])
        body = auto.admin.call("MngExecWorkflowRule", {"id": rule["id"], "input": {}})
    assert body["run"]["status"] == "failed" and "unreachable" in body["run"]["error"]


def test_a_listener_on_a_port_in_use_fails_at_once():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            SmtpListener(f"127.0.0.1:{taken.getsockname()[1]}", lambda _mail: None)


def test_a_rule_mailing_on_email_sent_stops_at_the_loop_bound(auto):
    mail = {"type": "email.send", "params": {"to": "x@y.z", "subject": "again"}}
    auto.add_rule(trigger="email.sent", actions=[mail])
    starter = auto.add_rule(trigger="manual", actions=[mail])
    auto.admin.call("MngExecWorkflowRule", {"id": starter["id"], "input": {}})
    wait_until(lambda: len(auto.relay.messages) >= 4)
    auto.engine.drain(2.0)
    assert len(auto.relay.messages) == 1 + auto.settings.loop_depth_limit
