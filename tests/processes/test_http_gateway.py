"""What only the HTTP door has: its URL, its body, its methods and statuses."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from tests.processes.conftest import Http


def post(url: str, body: bytes = b"", headers: dict | None = None, method: str = "POST") -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body if method != "GET" else None, headers=headers or {},
                                     method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_body_that_is_not_json_is_a_bad_request(running):
    door = Http(running.http_url, running.reader)
    status, reply = door.send("START", name="onboarding", raw_body=b"{not json")
    assert (status, reply["error"]["code"]) == (400, "BAD_REQUEST")


def test_a_missing_or_unknown_cmd_is_refused_with_a_4xx(running):
    auth = {"Authorization": f"Bearer {running.reader}"}
    status, reply = post(f"{running.http_url}/workflow?name=onboarding", headers=auth)
    assert (status, reply["error"]["code"]) == (400, "BAD_REQUEST")
    status, reply = post(f"{running.http_url}/workflow?cmd=MngGetFlows", headers=auth)
    assert (status, reply["error"]["code"]) == (400, "UNKNOWN_COMMAND")


def test_only_post_is_served(running):
    status, reply = post(f"{running.http_url}/workflow?cmd=START&name=onboarding", method="GET")
    assert status == 405 and reply["success"] is False


def test_the_token_must_be_a_bearer_token(running):
    status, reply = post(f"{running.http_url}/workflow?cmd=START&name=onboarding",
                         headers={"Authorization": f"Basic {running.reader}"})
    assert (status, reply["error"]["code"]) == (401, "UNAUTHENTICATED")


def test_the_body_is_the_input_and_query_parameters_name_the_rest(running):
    auth = {"Authorization": f"Bearer {running.reader}", "Content-Type": "application/json"}
    status, reply = post(f"{running.http_url}/workflow?cmd=START&name=onboarding", b'{"email": "x@y.z"}', auth)
    assert status == 200 and reply["body"]["output"] == {"email": "x@y.z"}
    pid = reply["body"]["pid"]
    status, reply = post(f"{running.http_url}/workflow?cmd=EVENT&pid={pid}&name=next", b"", auth)
    assert status == 200 and reply["body"]["state"] == "docs"
