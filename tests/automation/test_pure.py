"""The pure parts: due-time planning and catch-up, sink signatures, mode contexts and results."""

from __future__ import annotations

import pytest

from brokerflow.errors import ActionFailed, BadRequest, Unauthenticated, ValidationFailed
from brokerflow.workflow.isotime import parse_iso_ms
from brokerflow.workflow.modes import schedule, sinks
from brokerflow.workflow.modes.contexts import (
    apply_results,
    check_record,
    hook_brand,
    is_sweep,
    render_record,
    set_field_name,
    sink_response,
    trace,
)
from brokerflow.workflow.reference import ReferenceData

T = parse_iso_ms  # short: the tables read as times
MIN = 60_000


# -- schedule.plan ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cron", "since", "now", "due", "skipped"),
    [
        ("0 * * * *", "2030-01-01T10:00:30Z", "2030-01-01T11:00:10Z", "2030-01-01T11:00:00Z", 0),
        ("0 * * * *", "2030-01-01T10:00:00Z", "2030-01-01T11:00:00Z", "2030-01-01T11:00:00Z", 0),  # now is due
        ("0 * * * *", "2030-01-01T11:00:00Z", "2030-01-01T11:59:59Z", None, 0),  # since is exclusive
        ("0 * * * *", "2030-01-01T10:30:00Z", "2030-01-01T15:10:00Z", "2030-01-01T15:00:00Z", 4),  # downtime
        ("*/5 * * * *", "2030-01-01T10:00:00Z", "2030-01-01T10:01:00Z", None, 0),
        ("30 9 * * 1", "2030-01-01T00:00:00Z", "2030-01-15T12:00:00Z", "2030-01-14T09:30:00Z", 1),  # Mondays
    ],
)
def test_cron_plans_fire_the_latest_due_time_and_count_the_skipped(cron, since, now, due, skipped):
    planned = schedule.plan("interval", {"cron": cron}, T(since), T(now))
    assert planned == (None if due is None else T(due), skipped)


def test_skipped_due_times_are_counted_up_to_a_cap():
    planned = schedule.plan("interval", {"cron": "* * * * *"}, T("2000-01-01T00:00:00Z"), T("2030-01-01T00:00:00Z"))
    assert planned == (T("2030-01-01T00:00:00Z"), schedule.SKIP_COUNT_CAP)


@pytest.mark.parametrize(
    ("since", "now", "due"),
    [("2030-01-01T09:00:00Z", "2030-01-01T10:00:00Z", "2030-01-01T10:00:00Z"),
     ("2030-01-01T09:00:00Z", "2030-01-01T09:59:59Z", None),
     ("2030-01-01T10:00:00Z", "2030-01-02T00:00:00Z", None),  # already past at the start of the window
     ("2030-01-01T09:00:00Z", "2030-01-05T00:00:00Z", "2030-01-01T10:00:00Z")],  # late, after downtime
)
def test_timestamp_plans_fire_when_at_falls_in_the_window(since, now, due):
    planned = schedule.plan("timestamp", {"at": "2030-01-01T12:00:00+02:00"}, T(since), T(now))
    assert planned.due_ms == (None if due is None else T(due))


@pytest.mark.parametrize("bad", [None, {}, {"cron": "not cron"}, {"at": "tomorrow"}, "0 * * * *"])
def test_unreadable_schedules_plan_nothing(bad):
    for trigger in ("interval", "timestamp", "manual"):
        assert schedule.plan(trigger, bad, 0, T("2030-01-01T00:00:00Z")) == (None, 0)
        assert schedule.next_due(trigger, bad, 0) is None


def test_next_due_is_strictly_after():
    assert schedule.next_due("interval", {"cron": "0 * * * *"}, T("2030-01-01T10:00:00Z")) == T("2030-01-01T11:00:00Z")
    assert schedule.next_due("timestamp", {"at": "2030-01-01T10:00:00Z"}, T("2030-01-01T09:00:00Z")) == \
        T("2030-01-01T10:00:00Z")


# -- sinks ------------------------------------------------------------------------------------
NOW_MS = T("2030-01-01T00:00:00Z")


def query(path: str) -> dict[str, str]:
    from urllib.parse import parse_qsl, urlsplit

    return dict(parse_qsl(urlsplit(path).query))


def test_the_signature_is_hmac_sha256_over_method_route_and_expiry():
    import hashlib
    import hmac

    expected = hmac.new(b"k", b"POST\nleads/new\n1893456000", hashlib.sha256).hexdigest()
    assert sinks.sign("k", "post", "/leads/new/", 1893456000) == expected


@pytest.mark.parametrize(
    ("method", "route", "changes", "problem"),
    [
        ("POST", "a/b", {}, None),
        ("GET", "a/b", {}, "does not match"),
        ("POST", "a/c", {}, "does not match"),
        ("POST", "/a/b/", {}, None),
        ("POST", "a/b", {"__sign": "0" * 64}, "does not match"),
        ("POST", "a/b", {"__sign": ""}, "not signed"),
        ("POST", "a/b", {"__expires": "soon"}, "not a unix time"),
        ("POST", "a/b", {"__expires": str(NOW_MS // 1000 + 10)}, "does not match"),
    ],
)
def test_verify_accepts_only_the_signed_request(method, route, changes, problem):
    signed = {**query(sinks.signed_path("k", "a/b", "POST")), **changes}
    if problem is None:
        sinks.verify("k", method, route, signed, NOW_MS)
    else:
        with pytest.raises(Unauthenticated, match=problem):
            sinks.verify("k", method, route, signed, NOW_MS)


def test_expiry_is_checked_after_the_signature():
    expires = NOW_MS // 1000
    signed = query(sinks.signed_path("k", "r", "GET", expires))
    sinks.verify("k", "GET", "r", signed, NOW_MS + 999)  # the same second still counts
    with pytest.raises(Unauthenticated, match="expired"):
        sinks.verify("k", "GET", "r", signed, NOW_MS + 1000)


@pytest.mark.parametrize(
    ("body", "content_type", "decoded"),
    [
        (b'{"a": 1}', "application/json", {"a": 1}),
        (b'{"a": 1}', "application/vnd.psp+json; charset=utf-8", {"a": 1}),
        (b"", "application/json", None),
        (b"a=1&b=", "application/x-www-form-urlencoded", {"a": "1", "b": ""}),
        (b"plain", "text/plain", "plain"),
        (b"\xff\xfe", None, b"\xff\xfe"),
    ],
)
def test_bodies_are_decoded_by_content_type(body, content_type, decoded):
    assert sinks.decode_body(body, content_type) == decoded


def test_bad_json_and_big_bodies_are_bad_requests():
    with pytest.raises(BadRequest):
        sinks.decode_body(b"{", "application/json")
    with pytest.raises(BadRequest):
        sinks.decode_body(b"x" * (sinks.MAX_BODY_BYTES + 1), "text/plain")


def test_the_request_context_flattens_one_level_and_hides_reserved_query_keys():
    view = sinks.request_view("post", "/kyc/cb/", {"X-Id": "7"}, {"__sign": "s", "n": "1"}, {"a": {"b": 1}})
    ctx = sinks.request_context(view)
    assert (ctx["request.method"], ctx["request.route"], ctx["request.headers.x-id"]) == ("POST", "kyc/cb", "7")
    assert ctx["request.query.n"] == "1" and "request.query.__sign" not in ctx
    assert ctx["request.body.a"] == {"b": 1}


# -- modes ------------------------------------------------------------------------------------
def test_record_set_fields_are_the_hooks_own_record():
    assert set_field_name("customer", "customer.risk_level") == "risk_level"
    assert set_field_name("account", "leverage") == "leverage"
    for bad in ("account.leverage", "", "a.b", None):
        with pytest.raises(ValueError):
            set_field_name("customer", bad)


def test_results_fold_sets_in_order_and_stop_at_a_rejection():
    actions = [{"type": "record.set", "status": "success", "field": "a", "value": 1},
               {"type": "record.set", "status": "failed", "field": "b", "value": 2},
               {"type": "operation.reject", "status": "success", "message": "no"},
               {"type": "record.set", "status": "success", "field": "c", "value": 3}]
    assert apply_results({"a": 0}, actions) == ({"a": 1}, "no")
    assert apply_results({"a": 0}, actions[:2]) == ({"a": 1}, None)


@pytest.mark.parametrize(
    ("resource", "operation", "record", "paths"),
    [("customer", "create", {"email": "a"}, []),
     ("customer", "update", {"email": "a"}, ["record.id"]),
     ("customer", "create", {"id": "7", "kyc_current_level": True}, ["record.id", "record.kyc_current_level"]),
     ("account", "update", {"login": 5, "enable": "yes", "x": object}, ["record.enable"]),
     ("account", "create", {"leverage": None}, [])],
)
def test_records_are_checked_against_the_bus_schemas(resource, operation, record, paths):
    if not paths:
        check_record(resource, operation, record, "in")
        return
    with pytest.raises(ValidationFailed) as caught:
        check_record(resource, operation, record, "in")
    assert [d["path"] for d in caught.value.details] == paths


def test_hook_brand_follows_the_seed_links():
    refs = ReferenceData()
    refs.apply("group", {"group": "g", "brand": "alpha"})
    refs.apply("account", {"login": 1, "group": "g"})
    refs.apply("customer", {"id": 5, "brand": "beta"})
    assert hook_brand("account", {"login": 2, "group": "g"}, refs) == "alpha"
    assert hook_brand("account", {"login": 1}, refs) == "alpha"
    assert hook_brand("account", {"login": 3}, refs) is None
    assert hook_brand("customer", {"id": 5}, refs) == "beta"
    assert hook_brand("customer", {"id": 5, "brand": "gamma"}, refs) == "gamma"


def test_a_single_placeholder_keeps_its_type_others_render():
    ctx = {"request.body.id": 501, "request.body.step": "ID"}
    record = {"customer_id": "{{ request.body.id }}", "note": "step {{request.body.step}}", "level": 1,
              "x": "{{unknown}}"}
    assert render_record(record, ctx) == {"customer_id": 501, "note": "step ID", "level": 1, "x": "{{unknown}}"}


def test_sweeps_are_rules_about_customers():
    executors = {"notify.manager": "notifier", "customer.set_status": "customer"}
    assert is_sweep({"conditions": [{"field": "customer.status", "op": "==", "value": "x"}]}, executors)
    assert is_sweep({"actions": [{"type": "customer.set_status"}]}, executors)
    assert not is_sweep({"conditions": [{"field": "brand", "op": "==", "value": "a"}],
                         "actions": [{"type": "notify.manager"}]}, executors)


def test_the_sink_response_is_the_first_respond_and_a_failure_wins():
    respond = {"type": "sink.respond", "status": "success", "http_status": 201, "headers": {"A": "b"}, "body": "x"}
    runs = [{"status": "success", "actions": [{"type": "notify.manager", "status": "success"}]},
            {"status": "success", "actions": [respond]},
            {"status": "success", "actions": [{**respond, "body": "later"}]}]
    assert sink_response(runs) == {"status": 201, "headers": {"A": "b"}, "body": "x"}
    assert sink_response(runs[:1]) == {"status": 200, "headers": {}, "body": ""}
    with pytest.raises(ActionFailed):
        sink_response([*runs, {"status": "failed", "rule_id": 3, "id": 9, "error": "boom"}])


def test_the_trace_lists_conditions_then_actions():
    run = {"actions": [{"type": "webhook.send", "status": "failed", "error": "HTTP 500", "ms": 3.0, "http_status": 500},
                       {"type": "notify.manager", "status": "skipped", "ms": 0.0}]}
    steps = trace([{"field": "input.x", "op": "==", "value": 1}], {"input.x": 1}, run)
    assert steps == [
        {"step": "condition", "field": "input.x", "op": "==", "value": 1, "actual": 1, "result": True},
        {"step": "action", "type": "webhook.send", "status": "failed", "result": {"http_status": 500},
         "error": "HTTP 500", "ms": 3.0},
        {"step": "action", "type": "notify.manager", "status": "skipped", "result": None, "error": None, "ms": 0.0},
    ]
