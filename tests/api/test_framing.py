"""Decoding request frames and encoding replies."""

from __future__ import annotations

import json

import msgpack
import pytest

from brokerflow.api.framing import decode_request, encode_reply, wants_json
from brokerflow.errors import BadRequest

MAX = 1024


def test_msgpack_request_decodes_with_defaults_for_missing_params_and_token():
    request, as_json = decode_request(msgpack.packb({"cmd": "Ping"}), MAX)
    assert request == {"cmd": "Ping", "token": None, "params": {}}
    assert as_json is False


def test_json_request_is_recognised_by_its_first_byte():
    frame = json.dumps({"cmd": "MngGetWorkflowRule", "token": "t", "params": {"id": 3}}).encode()
    request, as_json = decode_request(frame, MAX)
    assert request == {"cmd": "MngGetWorkflowRule", "token": "t", "params": {"id": 3}}
    assert as_json is True


def test_null_params_mean_no_params():
    request, _ = decode_request(msgpack.packb({"cmd": "Ping", "params": None}), MAX)
    assert request["params"] == {}


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "empty frame"),
        (b"x" * (MAX + 1), "exceeds the limit"),
        (b"{not json", "invalid JSON"),
        (b"{\xff\xfe}", "not UTF-8"),
        (b"\xc1", "neither a JSON object nor valid msgpack"),
        (msgpack.packb({"cmd": "Ping"}) + b"\x00", "extra bytes"),
        (msgpack.packb({1: "Ping"}, strict_types=False), "neither a JSON object"),
        (msgpack.packb([1, 2, 3]), "must be a map"),
        (msgpack.packb("Ping"), "must be a map"),
        (msgpack.packb({"params": {}}), "no cmd"),
        (msgpack.packb({"cmd": 7}), "cmd must be a non-empty string"),
        (msgpack.packb({"cmd": ""}), "cmd must be a non-empty string"),
        (msgpack.packb({"cmd": "Ping", "params": [1]}), "params must be a map"),
        (msgpack.packb({"cmd": "Ping", "params": "x"}), "params must be a map"),
        (msgpack.packb({"cmd": "Ping", "token": 5}), "token must be a string"),
        (b'{"cmd": "Ping", "token": ["a"]}', "token must be a string"),
        (b'{"cmd": "Ping"} trailing', "invalid JSON"),
    ],
)
def test_bad_frames_are_bad_requests_with_a_clear_reason(frame, reason):
    with pytest.raises(BadRequest) as info:
        decode_request(frame, MAX)
    assert reason in info.value.text


def test_deeply_nested_json_is_a_bad_request_not_a_crash():
    frame = b'{"cmd": "Ping", "params": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    with pytest.raises(BadRequest, match="nested too deeply"):
        decode_request(frame, len(frame))


def test_deeply_nested_msgpack_is_a_bad_request_not_a_crash():
    frame = b"\x81\xa3cmd" + b"\x91" * 100_000 + b"\xc0"
    with pytest.raises(BadRequest):
        decode_request(frame, len(frame))


def test_wants_json_looks_only_at_the_first_byte():
    assert wants_json(b"{garbage")
    assert not wants_json(b"\x81garbage")
    assert not wants_json(b"")


def test_json_reply_encodes_unknown_values_as_text():
    class Opaque:
        def __str__(self) -> str:
            return "t"

    data = encode_reply({"success": True, "body": {"when": Opaque()}}, True)
    assert json.loads(data) == {"success": True, "body": {"when": "t"}}


def test_msgpack_reply_keeps_bytes_as_bin_and_sets_as_lists():
    data = encode_reply({"success": True, "body": {"raw": b"\x00\x01", "tags": {"a"}}}, False)
    assert msgpack.unpackb(data, raw=False) == {"success": True, "body": {"raw": b"\x00\x01", "tags": ["a"]}}


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b'{"cmd": "Ping", "params": {"n": ' + b"1" * 4301 + b"}}", "4300"),
        (b'{"cmd": "Ping", "token": "\\udfff"}', "surrogate"),
        (b'{"cmd": "Ping", "params": {"k": ["\\ud800x"]}}', "surrogate"),
    ],
)
def test_json_a_codec_cannot_carry_on_is_a_bad_request(frame, reason):
    with pytest.raises(BadRequest, match=reason):
        decode_request(frame, 64 * 1024)


def test_a_surrogate_pair_is_one_character_and_fine():
    request, _ = decode_request(b'{"cmd": "Ping", "token": "\\ud83d\\ude00"}', MAX)
    assert request["token"] == "\U0001f600"


def _strict(text: str):
    def refuse(name):
        raise AssertionError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_not_json_and_are_refused(constant):
    with pytest.raises(BadRequest, match="not a JSON number"):
        decode_request(b'{"cmd": "Ping", "params": {"x": ' + constant + b"}}", MAX)


def test_a_json_reply_never_holds_nan_or_infinity():
    envelope = {"success": True, "body": {"x": float("nan"), "y": [float("inf"), 1.5], "z": {"w": -float("inf")}}}
    assert _strict(encode_reply(envelope, True).decode()) == {"success": True,
                                                              "body": {"x": None, "y": [None, 1.5], "z": {"w": None}}}
