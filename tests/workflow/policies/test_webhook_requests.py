"""Webhook policy: timeout clamping, methods, secret masking and the target address check."""

from __future__ import annotations

import pytest

from brokerflow.errors import ActionFailed
from brokerflow.workflow.policies.webhook_requests import (
    clamp_timeout_ms,
    idempotency_key,
    is_forbidden_ip,
    mask_headers,
    mask_text,
    mask_url,
    normalize_method,
)


@pytest.mark.parametrize(("value", "expected"), [
    (None, 5000), (5000, 5000), (1, 1000), (999, 1000), (1000, 1000), (30000, 30000), (30001, 30000),
    (10**9, 30000), (-5, 1000), (2500.7, 2500), ("7000", 7000), ("soon", 5000), (True, 5000),
    (float("nan"), 5000), ([], 5000),
])
def test_clamp_timeout_ms(value, expected):
    assert clamp_timeout_ms(value) == expected


@pytest.mark.parametrize(("method", "expected"), [
    (None, "POST"), ("", "POST"), ("post", "POST"), (" get ", "GET"), ("PUT", "PUT"), ("patch", "PATCH"),
    ("DELETE", "DELETE"),
])
def test_normalize_method(method, expected):
    assert normalize_method(method) == expected


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "GET /x", 5])
def test_unsupported_methods_fail_the_action(method):
    with pytest.raises(ActionFailed, match="unsupported webhook method"):
        normalize_method(method)


@pytest.mark.parametrize(("url", "expected"), [
    ("https://example.com/hook", "https://example.com/hook"),
    ("https://user:s3cret@example.com/hook", "https://user:***@example.com/hook"),
    ("https://TOKENVALUE@example.com/hook", "https://***@example.com/hook"),
    ("https://example.com/hook?token=abc&page=2", "https://example.com/hook?token=***&page=2"),
    ("https://example.com/h?api_key=1&Signature=zz&access_token=q&x=1",
     "https://example.com/h?api_key=***&Signature=***&access_token=***&x=1"),
    ("https://example.com/h?password=p&auth=a&client_secret=c",
     "https://example.com/h?password=***&auth=***&client_secret=***"),
    ("https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
     "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"),
    ("https://hooks.slack.com/services/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",
     "https://hooks.slack.com/services/T0AB12CD3/B0AB12CD3/***"),
    ("https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage",
     "https://api.telegram.org/bot123456789:***/sendMessage"),
    ("https://example.com/h/0123456789abcdef0123456789abcdef", "https://example.com/h/***"),
    ("https://example.com/webhook-receiver-endpoint-v2", "https://example.com/webhook-receiver-endpoint-v2"),
])
def test_mask_url(url, expected):
    assert mask_url(url) == expected


def test_mask_headers():
    headers = {"Authorization": "Bearer abc", "Proxy-Authorization": "Basic x", "Cookie": "s=1",
               "X-Api-Key": "k", "X-Auth-Token": "t", "X-Signature": "s", "X-Client-Secret": "c",
               "X-Password": "p", "Content-Type": "application/json", "X-Request-Id": "42"}
    masked = mask_headers(headers)
    assert masked == {**{name: "***" for name in headers}, "Content-Type": "application/json",
                      "X-Request-Id": "42"}
    assert headers["Authorization"] == "Bearer abc"
    assert mask_headers(None) == {}


@pytest.mark.parametrize(("text", "expected"), [
    ("sent with Bearer abc.def-ghi", "sent with Bearer ***"),
    ("Authorization: Bearer abc", "Authorization: Bearer ***"),
    ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic ***"),
    ("token=abc123 rejected", "token=*** rejected"),
    ('{"api_key": "abc", "x": 1}', '{"api_key": "***", "x": 1}'),
    ("secret: hunter2", "secret: ***"),
    ("POST https://u:p@example.com/h?token=t failed", "POST https://u:***@example.com/h?token=*** failed"),
    ("HTTP 500", "HTTP 500"),
    ("timeout: no response within 5000 ms", "timeout: no response within 5000 ms"),
    (None, ""),
])
def test_mask_text(text, expected):
    assert mask_text(text) == expected


@pytest.mark.parametrize("ip", [
    "127.0.0.1", "127.8.8.8", "::1", "10.0.0.5", "172.16.3.4", "192.168.1.1", "169.254.1.1",
    "169.254.169.254", "fd00:ec2::254", "fe80::1", "fc00::1", "0.0.0.0", "::", "224.0.0.1", "ff02::1",
    "100.64.0.1", "100.127.255.254", "240.0.0.1", "255.255.255.255", "::ffff:127.0.0.1",
    "::ffff:10.1.2.3", "::ffff:169.254.169.254", "64:ff9b::7f00:1", "64:ff9b::808:808", "2002:7f00:1::", "fe80::1%eth0",
    "[::1]", "not-an-ip", "", "fec0::1",
])
def test_forbidden_addresses(ip):
    assert is_forbidden_ip(ip, []) is True


@pytest.mark.parametrize("ip", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8",
                                "100.128.0.1", "2002:808:808::1"])
def test_public_addresses_are_allowed(ip):
    assert is_forbidden_ip(ip, []) is False


@pytest.mark.parametrize(("ip", "allow", "expected"), [
    ("127.0.0.1", ["127.0.0.0/8"], False),
    ("127.0.0.1", ["10.0.0.0/8"], True),
    ("10.1.2.3", ["10.1.0.0/16", "192.168.0.0/16"], False),
    ("::ffff:127.0.0.1", ["127.0.0.1/32"], False),
    ("::1", ["::1/128"], False),
    ("::1", ["127.0.0.0/8"], True),
    ("169.254.169.254", ["169.254.169.254"], False),
    ("127.0.0.1", ["garbage", "127.0.0.1/32"], False),
    ("127.0.0.1", ["garbage"], True),
])
def test_allow_list(ip, allow, expected):
    assert is_forbidden_ip(ip, allow) is expected


def test_idempotency_key_is_stable_and_distinct():
    assert idempotency_key(42, 0) == idempotency_key(42, 0)
    keys = {idempotency_key(run, index) for run in (1, 2, 12) for index in (0, 1, 2)}
    assert len(keys) == 9


def test_a_bus_events_run_keys_on_the_event_and_rule_so_a_rerun_after_a_crash_sends_the_same_key():
    first, rerun = idempotency_key(41, 1, ("mt5", 7, 3)), idempotency_key(99, 1, ("mt5", 7, 3))
    assert first == rerun and first.startswith("brokerflow-e")
    others = {idempotency_key(41, 1, event) for event in (("mt5", 8, 3), ("mt5", 7, 4), ("crm", 7, 3))}
    assert first not in others and len(others) == 3
    assert idempotency_key(41, 2, ("mt5", 7, 3)) != first
