"""Webhook delivery policy: backoff, what is retried, Retry-After, signing, write-only headers."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from brokerflow.errors import ValidationFailed
from brokerflow.workflow.policies import webhook_delivery as policy

# -- backoff -----------------------------------------------------------------------------------


def test_the_ceiling_doubles_per_attempt_and_stops_at_600_s():
    assert [policy.backoff_ceiling_s(n, 2.0) for n in range(1, 6)] == [2.0, 4.0, 8.0, 16.0, 32.0]
    assert policy.backoff_ceiling_s(10, 2.0) == 600.0
    assert policy.backoff_ceiling_s(10_000, 2.0) == 600.0  # no overflow on absurd attempt numbers


def test_full_jitter_draws_under_the_ceiling_from_the_injected_source_never_under_50_ms():
    assert policy.retry_delay_s(3, 2.0, lambda: 1.0) == 8.0
    assert policy.retry_delay_s(3, 2.0, lambda: 0.5) == 4.0
    assert policy.retry_delay_s(3, 2.0, lambda: 0.0) == 0.05
    assert policy.retry_delay_s(30, 2.0, lambda: 1.0) == 600.0


def test_a_retry_after_is_a_lower_bound_and_is_capped():
    assert policy.retry_delay_s(1, 0.05, lambda: 1.0, retry_after_s=7.0) == 7.0
    assert policy.retry_delay_s(1, 60.0, lambda: 1.0, retry_after_s=7.0) == 60.0
    assert policy.retry_delay_s(1, 0.05, lambda: 1.0, retry_after_s=10**9) == 600.0


@pytest.mark.parametrize(("value", "seconds"), [
    ("5", 5.0), ("0", 0.0), ("31536000", 600.0), ("9" * 40, 600.0),  # a year, and absurd: capped
    ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),  # an HTTP date 30 s from "now"
    ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: now
    ("-3", None), ("soon", None), ("", None), (None, None), ("1.5", None), ("x" * 200, None),
    ("Wed, 21 Oct 2015 07:28:30", None),  # a date without a zone
])
def test_retry_after_is_read_as_seconds_or_an_http_date(value, seconds):
    now_s = 1445412480.0  # 2015-10-21T07:28:00Z
    assert policy.parse_retry_after(value, now_s) == seconds


# -- what is retried ---------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "status", "verdict"), [
    ("ok", 200, "success"), ("ok", 204, "success"),
    ("http", 500, "retry"), ("http", 503, "retry"), ("http", 599, "retry"), ("http", 408, "retry"),
    ("http", 429, "retry"),
    ("http", 400, "final"), ("http", 401, "final"), ("http", 404, "final"), ("http", 410, "final"),
    ("http", 600, "final"), ("http", 199, "final"),
    ("redirect", 302, "final"), ("refused", None, "final"), ("invalid", None, "final"),
    ("certificate", None, "final"),
    ("connect", None, "retry"), ("timeout", None, "retry"), ("tls", None, "retry"), ("dns", None, "retry"),
])
def test_classification(kind, status, verdict):
    assert policy.classify(kind, status) == verdict


def test_retry_after_is_read_for_429_and_503_only():
    assert policy.wants_retry_after(429) and policy.wants_retry_after(503)
    assert not policy.wants_retry_after(500) and not policy.wants_retry_after(None)


# -- params ------------------------------------------------------------------------------------


def test_params_default_and_clamp_junk():
    assert (policy.retries_of({}), policy.backoff_of({})) == (5, 2.0)
    assert (policy.retries_of({"retries": 99}), policy.retries_of({"retries": -1})) == (20, 0)
    assert (policy.retries_of({"retries": True}), policy.backoff_of({"backoff_s": "x"})) == (5, 2.0)
    assert (policy.backoff_of({"backoff_s": 0.001}), policy.backoff_of({"backoff_s": float("nan")})) == (0.05, 2.0)


def test_param_problems_name_each_bad_value_and_unknown_secret():
    problems = dict(policy.param_problems({"retries": 21, "backoff_s": 0.01, "secret": "partner"}, {"crm"}))
    assert set(problems) == {"retries", "backoff_s", "secret"}
    assert "no signing secret named 'partner'" in problems["secret"] and "crm" in problems["secret"]
    assert policy.param_problems({"retries": 0, "backoff_s": 0.05, "secret": "crm"}, {"crm"}) == []
    assert policy.param_problems({"retries": 20, "backoff_s": 3600}) == []  # valid; its delays are capped
    assert policy.param_problems({"backoff_s": float("inf")}) != []
    assert policy.param_problems({"secret": "partner"}) == []  # names unknown here: only the form
    assert policy.param_problems({"secret": "no spaces"}) != []
    assert policy.param_problems({"retries": "5", "backoff_s": True}) == []  # types: the generic check's


# -- signing -----------------------------------------------------------------------------------


def test_the_standard_webhooks_reference_signature():
    """The Standard Webhooks specification's own example (a whsec_ secret: its base64 is the key)."""
    key = policy.signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    sig = policy.signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_a_raw_secret_is_its_utf8_bytes_as_protocol_section_10_writes_it():
    key = policy.signing_key("s3cret")
    expected = hmac.new(b"s3cret", b"msg_1.1700000000.{}", hashlib.sha256).digest()
    assert policy.signature(key, "msg_1", 1700000000, b"{}") == "v1," + base64.b64encode(expected).decode()


@pytest.mark.parametrize("bad", ["", "whsec_", "whsec_!!!not-base64"])
def test_an_unusable_secret_is_refused_without_quoting_it(bad):
    with pytest.raises(ValueError) as refused:
        policy.signing_key(bad)
    assert "not-base64" not in str(refused.value)


def test_the_secret_option_is_name_equals_secret():
    assert policy.parse_secret_option("crm=abc=def") == ("crm", "abc=def")  # base64 padding stays
    for bad in ("crm", "=abc", "crm=", "a b=c"):
        with pytest.raises(ValueError) as refused:
            policy.parse_secret_option(bad)
        assert "abc" not in str(refused.value)


# -- write-only headers ------------------------------------------------------------------------

RULE = {"name": "r", "actions": [
    {"type": "notify.manager", "params": {"message": "hi"}},
    {"type": "webhook.send", "params": {"url": "https://a.example/h", "headers": {
        "Authorization": "Bearer A", "proxy-authorization": "Basic B", "Cookie": "c=1", "X-API-KEY": "k",
        "X-Auth-Token": "t", "X-Client-Secret": "s", "Content-Type": "application/json", "X-Trace": "keep"}}},
]}


def test_every_write_only_header_is_masked_and_nothing_else():
    headers = policy.mask_rule(RULE)["actions"][1]["params"]["headers"]
    assert headers == {"Authorization": "***", "proxy-authorization": "***", "Cookie": "***", "X-API-KEY": "***",
                       "X-Auth-Token": "***", "X-Client-Secret": "***", "Content-Type": "application/json",
                       "X-Trace": "keep"}
    assert RULE["actions"][1]["params"]["headers"]["Authorization"] == "Bearer A"  # a copy was masked


def test_an_update_sending_the_mask_keeps_the_stored_value_and_a_new_value_replaces_it():
    sent = policy.mask_rule(RULE)["actions"]
    sent[1]["params"]["headers"]["Cookie"] = "c=2"
    kept = policy.keep_masked(sent, RULE["actions"])
    assert kept[1]["params"]["headers"] == {**RULE["actions"][1]["params"]["headers"], "Cookie": "c=2"}


def test_the_stored_value_is_found_when_actions_moved_by_type_and_url():
    sent = [{"type": "notify.manager", "params": {"message": "new first"}}, *policy.mask_rule(RULE)["actions"]]
    assert policy.keep_masked(sent, RULE["actions"])[2]["params"]["headers"]["Authorization"] == "Bearer A"


def test_the_mask_with_nothing_stored_is_refused_by_path():
    sent = [{"type": "webhook.send", "params": {"url": "https://b.example", "headers": {"Authorization": "***"}}}]
    with pytest.raises(ValidationFailed) as refused:
        policy.keep_masked(sent, RULE["actions"])
    assert refused.value.details == [{"path": "actions[0].params.headers.Authorization",
                                      "message": "'***' keeps the stored value, but none is stored"}]


def test_flows_and_run_entries_are_masked_too():
    flow = {"name": "f", "states": {"a": {"actions": RULE["actions"]}, "b": {"final": True}}}
    assert policy.mask_flow(flow)["states"]["a"]["actions"][1]["params"]["headers"]["Cookie"] == "***"
    sent = policy.mask_flow(flow)
    assert policy.keep_masked_flow(sent, flow)["states"]["a"]["actions"] == RULE["actions"]
    run = {"id": 1, "actions": [{"type": "sink.respond", "status": "success", "headers": {"Set-Cookie": "x",
                                                                                          "X-Token": "y"}}]}
    assert policy.mask_run(run)["actions"][0]["headers"] == {"Set-Cookie": "x", "X-Token": "***"}
