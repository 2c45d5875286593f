"""The HTTP gateway on a real waitress server, called with requests."""

from __future__ import annotations

from concurrent.futures import Future

import pytest
import requests

import brokerflow
from brokerflow.api.dispatcher import Dispatcher
from brokerflow.api.http_gateway import HttpGateway, make_app
from brokerflow.errors import Unauthenticated
from tests.api.conftest import MAX_FRAME_BYTES, manual_rule


@pytest.fixture
def http(machine_api):
    services = machine_api.services
    gateway = HttpGateway("127.0.0.1", 0, make_app(Dispatcher(services), services)).start()
    machine_api.url = gateway.url
    machine_api.gateway = gateway
    yield machine_api
    gateway.close()


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_the_gateway_binds_a_real_port_and_answers_health(http):
    assert http.gateway.port > 0
    reply = requests.get(f"{http.url}/health", timeout=5)
    assert reply.status_code == 200
    assert reply.json() == {"status": "ok", "version": brokerflow.__version__}


def test_workflow_start_and_event_with_a_json_body(http):
    reply = requests.post(f"{http.url}/workflow", params={"cmd": "START", "name": "signup"},
                          json={"email": "a@b.c"}, headers=_bearer(http.admin), timeout=5)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "application/json"
    body = reply.json()["body"]
    assert (body["result"], body["state"]) == ("SUCCESS", "personal")
    assert http.seen[-1][1] == {"name": "signup", "input": {"email": "a@b.c"}}
    reply = requests.post(f"{http.url}/workflow", params={"cmd": "EVENT", "pid": body["pid"], "name": "next"},
                          headers=_bearer(http.tokens["SESSION_DEALER"]), timeout=5)
    assert reply.status_code == 200
    assert reply.json()["body"]["state"] == "docs"
    assert "input" not in http.seen[-1][1]


def test_workflow_errors_carry_their_http_status(http):
    url = f"{http.url}/workflow"
    pid = requests.post(url, params={"cmd": "START", "name": "signup"}, headers=_bearer(http.admin),
                        timeout=5).json()["body"]["pid"]
    cases = [
        ({"cmd": "EVENT", "pid": pid, "name": "fly"}, _bearer(http.admin), 409, "EVENT_NOT_AVAILABLE"),
        ({"cmd": "START", "name": "signup"}, {}, 401, "UNAUTHENTICATED"),
        ({"cmd": "START", "name": "signup"}, _bearer("bf_wrong"), 401, "UNAUTHENTICATED"),
        ({"cmd": "START", "name": "signup"}, {"Authorization": "Basic abc"}, 401, "UNAUTHENTICATED"),
        ({"cmd": "EVENT", "pid": "missing", "name": "next"}, _bearer(http.admin), 404, "NOT_FOUND"),
        ({"cmd": "MngDeleteWorkflowRule"}, _bearer(http.admin), 400, "UNKNOWN_COMMAND"),
        ({}, _bearer(http.admin), 400, "BAD_REQUEST"),
    ]
    for params, headers, status, code in cases:
        reply = requests.post(url, params=params, headers=headers, timeout=5)
        assert (reply.status_code, reply.json()["error"]["code"]) == (status, code), params
        assert reply.json()["success"] is False


def test_an_invalid_json_body_is_a_400_bad_request(http):
    reply = requests.post(f"{http.url}/workflow", params={"cmd": "START", "name": "signup"}, data=b"{nope",
                          headers={**_bearer(http.admin), "Content-Type": "application/json"}, timeout=5)
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "BAD_REQUEST"
    assert "not valid JSON" in reply.json()["error"]["text"]


def test_a_body_over_the_cap_is_refused(http):
    reply = requests.post(f"{http.url}/workflow", params={"cmd": "START", "name": "signup"},
                          data=b"[" + b"1," * MAX_FRAME_BYTES + b"1]", headers=_bearer(http.admin), timeout=5)
    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == "BAD_REQUEST"


def test_unknown_routes_and_methods_answer_envelopes(http):
    reply = requests.get(f"{http.url}/nowhere", timeout=5)
    assert (reply.status_code, reply.json()["error"]["code"]) == (404, "NOT_FOUND")
    reply = requests.get(f"{http.url}/workflow", timeout=5)
    assert (reply.status_code, reply.json()["error"]["code"]) == (405, "BAD_REQUEST")


@pytest.fixture
def executing(http):
    calls = []

    def execute(rule, input, principal):
        calls.append((rule["id"], input, principal.role))
        fut: Future = Future()
        fut.set_result({"run": {"rule_id": rule["id"], "status": "success"}, "trace": ["ran"]})
        return fut

    http.services.exec_handler = execute
    http.exec_calls = calls
    return http


def test_automation_exec_runs_the_rule_with_the_body_as_input(executing):
    rule = executing.body("MngAddWorkflowRule", {"rule": manual_rule(exec_roles=["SESSION_DEALER"])})["rule"]
    url = f"{executing.url}/automation/{rule['id']}/exec"
    reply = requests.post(url, json={"customer_id": 7}, headers=_bearer(executing.tokens["SESSION_DEALER"]),
                          timeout=5)
    assert reply.status_code == 200
    assert reply.json()["body"] == {"run": {"rule_id": rule["id"], "status": "success"}, "trace": ["ran"]}
    assert executing.exec_calls == [(rule["id"], {"customer_id": 7}, "SESSION_DEALER")]
    reply = requests.post(url, headers=_bearer(executing.admin), timeout=5)
    assert reply.status_code == 200
    assert executing.exec_calls[-1][1] == {}


def test_automation_exec_rbac_and_unknown_rules(executing):
    rule = executing.body("MngAddWorkflowRule", {"rule": manual_rule()})["rule"]
    reply = requests.post(f"{executing.url}/automation/{rule['id']}/exec",
                          headers=_bearer(executing.tokens["SESSION_MANAGER"]), timeout=5)
    assert (reply.status_code, reply.json()["error"]["code"]) == (403, "ACCESS_DENIED")
    for rule_id in ("999", "abc"):
        reply = requests.post(f"{executing.url}/automation/{rule_id}/exec", headers=_bearer(executing.admin),
                              timeout=5)
        assert (reply.status_code, reply.json()["error"]["code"]) == (404, "NOT_FOUND")
    assert executing.exec_calls == []


@pytest.fixture
def sinking(http):
    seen = []

    def sink(route, request):
        seen.append((route, request))
        if request["query"].get("__sign") != "good":
            raise Unauthenticated("bad sink signature")
        fut: Future = Future()
        fut.set_result({"status": 201, "headers": {"X-Lead": "42"}, "body": f"thanks from {route}"})
        return fut

    http.services.sink_handler = sink
    http.sink_seen = seen
    return http


def test_a_sink_gets_the_whole_request_and_makes_the_response(sinking):
    reply = requests.put(f"{sinking.url}/sink/leads/new", params={"__sign": "good", "src": "ad"},
                         json={"name": "Ann"}, headers={"X-Trace": "t1"}, timeout=5)
    assert reply.status_code == 201
    assert reply.headers["X-Lead"] == "42"
    assert reply.text == "thanks from leads/new"
    route, request = sinking.sink_seen[-1]
    assert route == "leads/new"
    assert request["method"] == "PUT"
    assert request["route"] == "leads/new"
    assert request["query"] == {"__sign": "good", "src": "ad"}
    assert request["headers"]["x-trace"] == "t1"
    assert request["body"] == b'{"name": "Ann"}'
    assert request["content_type"] == "application/json"


def test_a_sink_with_a_bad_signature_is_401(sinking):
    reply = requests.get(f"{sinking.url}/sink/leads", params={"__sign": "forged"}, timeout=5)
    assert reply.status_code == 401
    assert reply.json()["error"]["code"] == "UNAUTHENTICATED"


def test_sinks_without_a_handler_are_500_with_a_clear_text(http):
    reply = requests.post(f"{http.url}/sink/leads", timeout=5)
    assert reply.status_code == 500
    assert reply.json()["error"]["text"] == "not available in this process: sink routes"


def test_a_sink_body_over_the_cap_is_413_and_runs_nothing(sinking):
    reply = requests.post(f"{sinking.url}/sink/leads", params={"__sign": "good"},
                          data=b"x" * (MAX_FRAME_BYTES + 1), timeout=5)
    assert reply.status_code == 413
    assert sinking.sink_seen == []


def test_close_stops_serving(machine_api):
    services = machine_api.services
    gateway = HttpGateway("127.0.0.1", 0, make_app(Dispatcher(services), services)).start()
    assert requests.get(f"{gateway.url}/health", timeout=5).status_code == 200
    gateway.close()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{gateway.url}/health", timeout=2)
    gateway.close()  # idempotent


def test_a_json_body_int_past_4300_digits_is_a_400(http):
    reply = requests.post(f"{http.url}/workflow", params={"cmd": "START", "name": "signup"},
                          data=b'{"n": ' + b"7" * 5000 + b"}", headers=_bearer(http.admin), timeout=5)
    assert (reply.status_code, reply.json()["error"]["code"]) == (400, "BAD_REQUEST")
    assert "4300" in reply.json()["error"]["text"]


def test_a_json_body_with_a_lone_surrogate_is_a_400(http):
    reply = requests.post(f"{http.url}/workflow", params={"cmd": "START", "name": "signup"},
                          data=b'{"email": "\\ud800"}', headers=_bearer(http.admin), timeout=5)
    assert (reply.status_code, reply.json()["error"]["code"]) == (400, "BAD_REQUEST")


def test_input_nested_past_the_cap_is_a_400_with_the_reason(http):
    nested: object = "leaf"
    for _ in range(40):
        nested = {"k": nested}
    reply = requests.post(f"{http.url}/workflow", params={"cmd": "START", "name": "signup"},
                          json=nested, headers=_bearer(http.admin), timeout=5)
    assert (reply.status_code, reply.json()["error"]["code"]) == (400, "BAD_REQUEST")
    assert "at most 32" in reply.json()["error"]["text"]


@pytest.mark.parametrize("rule_id", ["\u00b2", "\u0663", "9" * 30, "9223372036854775808"])
def test_rule_ids_that_are_not_ascii_int64_digits_are_not_found(executing, rule_id):
    reply = requests.post(f"{executing.url}/automation/{rule_id}/exec", headers=_bearer(executing.admin),
                          timeout=5)
    assert (reply.status_code, reply.json()["error"]["code"]) == (404, "NOT_FOUND")
    assert executing.exec_calls == []


def test_a_json_body_with_nan_is_a_400(http):
    reply = requests.post(f"{http.url}/workflow", params={"cmd": "START", "name": "signup"},
                          data=b'{"amount": NaN}', headers=_bearer(http.admin), timeout=5)
    assert (reply.status_code, reply.json()["error"]["code"]) == (400, "BAD_REQUEST")
