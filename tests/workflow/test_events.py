"""parse_event: good payloads per topic become Events; every malformed shape names its reason."""

from __future__ import annotations

import dataclasses

import pytest

from brokerflow.errors import MalformedEvent
from brokerflow.workflow.events import REFERENCE_TOPICS, TOPICS, Event, parse_event

GOOD = {
    "trade.push": {
        "event": "EV_RECORD_ADD",
        "record": {"order": 1, "login": 1001, "cmd": "OP_BUY", "volume": 100, "symbol": "EURUSD",
                   "open_price": 1.1, "close_price": 0, "profit": -3.5, "comment": "c", "amount_usd": 10},
    },
    "account.push": {
        "event": "EV_RECORD_UPDATE",
        "record": {"login": 1001, "group": "real\\eu", "name": "A", "email": "a@b.c", "country": "DE",
                   "enable": True, "leverage": 100, "customer_id": None},
    },
    "customer.push": {
        "event": "EV_RECORD_ADD",
        "record": {"id": 5, "brand": "acme", "email": "a@b.c", "country": "DE", "language": "de",
                   "kyc_status": "none", "kyc_current_level": 0, "risk_level": "low", "status": "active",
                   "assigned_manager_id": 2, "manager_id": None},
    },
    "kyc.step.push": {"record": {"customer_id": 5, "step_code": "POA", "level": 1, "status": "approved"}},
    "group.push": {"event": "EV_RECORD_ADD",
                   "record": {"group": "real\\eu", "brand": "acme", "currency": "EUR"}},
    "manager.push": {"event": "EV_RECORD_ADD",
                     "record": {"id": 2, "name": "M", "email": "m@b.c", "enabled": True, "brand": "acme"}},
    "rate.push": {"record": {"currency": "EUR", "usd": 1.08}},
}


def test_every_topic_has_a_good_example():
    assert set(GOOD) == set(TOPICS)
    assert set(REFERENCE_TOPICS) <= set(TOPICS)


@pytest.mark.parametrize("topic", TOPICS)
def test_good_payload_of_each_topic_parses(topic):
    payload = GOOD[topic]
    event = parse_event(topic, payload, received_ms=42)
    assert event.topic == topic
    assert event.event == payload.get("event")
    assert event.record == payload["record"]
    assert event.record is not payload["record"]
    assert (event.received_ms, event.depth, event.source, event.seq, event.id, event.ts_ms) == (
        42, 0, None, None, None, None)


def test_envelope_fields_are_carried():
    payload = {**GOOD["rate.push"], "source": "mt4", "seq": 7, "id": "ev-1", "ts": 1795435200000}
    event = parse_event("rate.push", payload, received_ms=5, depth=2)
    envelope = (event.source, event.seq, event.id, event.ts_ms, event.depth)
    assert envelope == ("mt4", 7, "ev-1", 1795435200000, 2)


def test_an_integer_id_is_kept_as_text():
    assert parse_event("rate.push", {**GOOD["rate.push"], "id": 12}, 0).id == "12"


def test_extra_record_fields_are_kept():
    payload = {"event": "EV_RECORD_ADD", "record": {"id": 5, "vip": True, "tags": ["a"]}}
    assert parse_event("customer.push", payload, 0).record == {"id": 5, "vip": True, "tags": ["a"]}


def test_kyc_step_push_takes_any_event_name_or_none():
    payload = {"event": "SOMETHING", "record": GOOD["kyc.step.push"]["record"]}
    assert parse_event("kyc.step.push", payload, 0).event == "SOMETHING"


def test_number_fields_take_ints_and_floats():
    record = {"currency": "JPY", "usd": 1}
    assert parse_event("rate.push", {"record": record}, 0).record["usd"] == 1


def test_events_are_frozen():
    event = parse_event("rate.push", GOOD["rate.push"], 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.topic = "x"


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"id": "ev-1", "source": "mt4", "seq": 3}, "ev-1"),
        ({"source": "mt4", "seq": 3}, "mt4:3"),
    ],
)
def test_key_prefers_id_then_source_and_seq(kwargs, key):
    assert Event("rate.push", None, {}, **kwargs).key == key


def test_key_without_id_or_seq_is_local_and_distinct_per_event():
    first, second = Event("rate.push", None, {}, received_ms=9), Event("rate.push", None, {}, received_ms=9)
    assert first.key.startswith("local:9:")
    assert first.key != second.key


def _with(topic, **record_changes):
    record = {**GOOD[topic]["record"], **record_changes}
    return {**GOOD[topic], "record": {k: v for k, v in record.items() if v is not _DROP}}


_DROP = object()

REJECTIONS = [
    ("order.push", GOOD["trade.push"], "unknown topic (10 chars)"),
    ("trade.push", [1, 2], "payload must be a map, got list"),
    ("trade.push", b"raw", "payload must be a map, got bytes"),
    ("trade.push", {"record": GOOD["trade.push"]["record"]}, "payload.event is missing"),
    ("account.push", {"record": {"login": 1}}, "payload.event is missing"),
    ("customer.push", {"record": {"id": 1}}, "payload.event is missing"),
    ("trade.push", {**GOOD["trade.push"], "event": "EV_BOGUS"}, "unknown event (8 chars)"),
    ("trade.push", {**GOOD["trade.push"], "event": 1}, "payload.event must be str, got int"),
    ("trade.push", {"event": "EV_RECORD_ADD"}, "payload.record must be a map"),
    ("trade.push", {"event": "EV_RECORD_ADD", "record": [1]}, "payload.record must be a map"),
    ("rate.push", {**GOOD["rate.push"], "id": ["x"]}, "payload.id must be a string"),
    ("rate.push", {**GOOD["rate.push"], "id": True}, "payload.id must be a string"),
    ("rate.push", {**GOOD["rate.push"], "source": 5}, "payload.source must be str, got int"),
    ("rate.push", {**GOOD["rate.push"], "seq": "5"}, "payload.seq must be int, got str"),
    ("rate.push", {**GOOD["rate.push"], "seq": True}, "payload.seq must be int, got bool"),
    ("rate.push", {**GOOD["rate.push"], "ts": 1.5}, "payload.ts must be int, got float"),
    ("rate.push", {"record": {"currency": "EUR", "usd": 1.0, 3: "x"}}, "record key of type int is not a string"),
    ("trade.push", _with("trade.push", order=_DROP), "record.order is missing"),
    ("trade.push", _with("trade.push", login=None), "record.login is missing"),
    ("trade.push", _with("trade.push", login="1001"), "record.login must be int, got str"),
    ("trade.push", _with("trade.push", login=True), "record.login must be int, got bool"),
    ("trade.push", _with("trade.push", cmd=1), "record.cmd must be str, got int"),
    ("trade.push", _with("trade.push", volume=1.5), "record.volume must be int, got float"),
    ("trade.push", _with("trade.push", profit="3"), "record.profit must be number, got str"),
    ("trade.push", _with("trade.push", amount_usd=False), "record.amount_usd must be number, got bool"),
    ("account.push", _with("account.push", enable=1), "record.enable must be bool, got int"),
    ("account.push", _with("account.push", customer_id="5"), "customer_id must be int, got str"),
    ("customer.push", _with("customer.push", id=_DROP), "record.id is missing"),
    ("customer.push", _with("customer.push", kyc_current_level="1"),
     "record.kyc_current_level must be int, got str"),
    ("kyc.step.push", _with("kyc.step.push", status=_DROP), "record.status is missing"),
    ("kyc.step.push", _with("kyc.step.push", step_code=_DROP), "record.step_code is missing"),
    ("kyc.step.push", _with("kyc.step.push", customer_id=_DROP), "record.customer_id is missing"),
    ("kyc.step.push", _with("kyc.step.push", level="1"), "record.level must be int, got str"),
    ("group.push", _with("group.push", group=_DROP), "record.group is missing"),
    ("group.push", _with("group.push", currency=978), "record.currency must be str, got int"),
    ("manager.push", _with("manager.push", id=_DROP), "record.id is missing"),
    ("manager.push", _with("manager.push", enabled="yes"), "record.enabled must be bool, got str"),
    ("rate.push", _with("rate.push", usd=_DROP), "record.usd is missing"),
    ("rate.push", _with("rate.push", usd="1.08"), "record.usd must be number, got str"),
    ("rate.push", _with("rate.push", currency=_DROP), "record.currency is missing"),
]


@pytest.mark.parametrize(("topic", "payload", "reason"), REJECTIONS)
def test_malformed_payloads_are_refused_with_their_reason(topic, payload, reason):
    with pytest.raises(MalformedEvent) as caught:
        parse_event(topic, payload, 0)
    assert caught.value.text.endswith(reason)
    assert caught.value.text.startswith((f"{topic}: ", "payload.", "unknown topic"))
    assert caught.value.code == "MALFORMED_EVENT"


def test_a_long_unknown_topic_is_cut_in_the_reason():
    with pytest.raises(MalformedEvent) as caught:
        parse_event("x" * 500, {}, 0)
    assert len(caught.value.text) < 100


def test_parse_event_copies_the_record_and_parse_decoded_keeps_the_decoders_own():
    from brokerflow.workflow.events import parse_decoded

    payload = {"event": "EV_RECORD_ADD", "record": {"order": 1, "login": 2, "cmd": "OP_BUY"}, "seq": 4}
    copied, kept = parse_event("trade.push", payload, 5), parse_decoded("trade.push", payload, 5)
    assert copied == kept == Event("trade.push", "EV_RECORD_ADD", {"order": 1, "login": 2, "cmd": "OP_BUY"},
                                   seq=4, received_ms=5)
    assert copied.record is not payload["record"] and kept.record is payload["record"]
    assert copied.extra == {} and copied.extra is not kept.extra


def test_a_record_shape_seen_before_is_judged_by_its_value_types_too():
    good = {"event": "EV_RECORD_ADD", "record": {"order": 1, "login": 2, "cmd": "OP_BUY"}}
    parse_event("trade.push", good, 0)
    with pytest.raises(MalformedEvent, match="record.login must be int, got bool"):
        parse_event("trade.push", {**good, "record": {"order": 1, "login": True, "cmd": "OP_BUY"}}, 0)


# -- what storage cannot hold is refused at the edge -------------------------------------------

BIG = 1 << 63  # one past the largest signed 64-bit int


@pytest.mark.parametrize(("changes", "reason"), [
    ({"seq": BIG}, "payload.seq must be between 0 and 2**63-1"),
    ({"seq": -1}, "payload.seq must be between 0 and 2**63-1"),
    ({"seq": -BIG - 1}, "payload.seq must be between 0 and 2**63-1"),
    ({"ts": BIG}, "payload.ts must be between -2**63 and 2**63-1"),
    ({"ts": -BIG - 1}, "payload.ts must be between -2**63 and 2**63-1"),
    ({"id": 1 << 64}, "payload.id is an integer outside the 64-bit range"),
    ({"id": -BIG - 1}, "payload.id is an integer outside the 64-bit range"),
], ids=lambda v: str(v) if isinstance(v, dict) else None)
def test_envelope_ints_outside_what_storage_holds_are_malformed(changes, reason):
    with pytest.raises(MalformedEvent) as caught:
        parse_event("trade.push", {**GOOD["trade.push"], **changes}, 0)
    assert caught.value.text == reason


def test_envelope_ints_at_the_edges_of_the_range_are_accepted():
    payload = {**GOOD["trade.push"], "seq": BIG - 1, "ts": -BIG, "id": (1 << 64) - 1}
    event = parse_event("trade.push", payload, 0)
    assert (event.seq, event.ts_ms, event.id) == (BIG - 1, -BIG, str((1 << 64) - 1))
    assert parse_event("trade.push", {**GOOD["trade.push"], "seq": 0}, 0).seq == 0


@pytest.mark.parametrize(("topic", "field"), [
    ("trade.push", "login"), ("trade.push", "order"), ("trade.push", "volume"), ("trade.push", "profit"),
    ("account.push", "customer_id"), ("customer.push", "id"), ("kyc.step.push", "level"),
    ("manager.push", "id"), ("rate.push", "usd"),
])
@pytest.mark.parametrize("value", [BIG, -BIG - 1, 1 << 64], ids=["2**63", "-2**63-1", "2**64"])
def test_record_ints_outside_the_signed_64_bit_range_are_malformed(topic, field, value):
    with pytest.raises(MalformedEvent) as caught:
        parse_event(topic, _with(topic, **{field: value}), 0)
    assert caught.value.text == f"{topic}: record.{field} is outside the signed 64-bit integer range"


def test_a_cached_plain_shape_still_checks_the_range_of_each_events_ints():
    # The first event caches the shape (keys, types); the second has the same shape.
    parse_event("trade.push", GOOD["trade.push"], 0)
    with pytest.raises(MalformedEvent, match="record.login is outside"):
        parse_event("trade.push", _with("trade.push", login=BIG), 0)
    assert parse_event("trade.push", _with("trade.push", login=BIG - 1), 0).record["login"] == BIG - 1


def test_an_extra_record_int_out_of_range_is_malformed_and_its_name_is_not_quoted():
    with pytest.raises(MalformedEvent) as caught:
        parse_event("trade.push", _with("trade.push", secret_field=BIG), 0)
    assert caught.value.text == "trade.push: a record field (12-char name) is outside the signed 64-bit integer range"


def test_unknown_topic_and_event_names_are_reported_by_length_never_quoted():
    with pytest.raises(MalformedEvent) as topic:
        parse_event("evil<script>.push", GOOD["trade.push"], 0)
    with pytest.raises(MalformedEvent) as event:
        parse_event("trade.push", {**GOOD["trade.push"], "event": "EV_<script>"}, 0)
    with pytest.raises(MalformedEvent) as key:
        parse_event("rate.push", {"record": {"currency": "EUR", "usd": 1.0, b"<script>": 1}}, 0)
    assert "script" not in topic.value.text and "17 chars" in topic.value.text
    assert "script" not in event.value.text and "11 chars" in event.value.text
    assert "script" not in key.value.text and "of type bytes" in key.value.text


@pytest.mark.parametrize("name", ["id", "source"])
def test_id_and_source_are_at_most_256_characters(name):
    at_cap = parse_event("rate.push", {**GOOD["rate.push"], name: "x" * 256}, 0)
    assert getattr(at_cap, name) == "x" * 256
    with pytest.raises(MalformedEvent) as caught:
        parse_event("rate.push", {**GOOD["rate.push"], name: "<" + "x" * 256}, 0)
    assert caught.value.text == f"payload.{name} is 257 characters, more than 256"


def test_an_empty_id_is_no_id_and_the_key_falls_back_to_source_and_seq():
    event = parse_event("rate.push", {**GOOD["rate.push"], "id": "", "source": "crm", "seq": 4}, 0)
    assert event.id is None
    assert event.key == "crm:4"


@pytest.mark.parametrize("value", [b"\x00raw", {"nested": [1, {"deep": b"x"}]}, [1, 2, bytearray(b"x")],
                                   {1: "int key"}])
def test_a_stored_record_holding_what_json_cannot_is_malformed_every_time(value):
    # The router stores reference records as JSON: a value it cannot write would fail the write
    # of that record (and of each later push merged over it), so it is refused at the edge.
    payload = {**GOOD["customer.push"], "record": {**GOOD["customer.push"]["record"], "photo": value}}
    for _ in range(2):  # the second time through the record-shape cache
        with pytest.raises(MalformedEvent, match="which a stored record cannot") as caught:
            parse_event("customer.push", payload, received_ms=0)
        assert "photo" not in caught.value.text and "raw" not in caught.value.text


def test_containers_of_plain_values_in_a_stored_record_and_binary_in_a_trade_are_kept():
    nested = {"address": {"city": "Berlin", "lines": ["a", 1, 2.5, None, True]}}
    customer = {**GOOD["customer.push"], "record": {**GOOD["customer.push"]["record"], **nested}}
    assert parse_event("customer.push", customer, received_ms=0).record["address"]["city"] == "Berlin"
    trade = {**GOOD["trade.push"], "record": {**GOOD["trade.push"]["record"], "blob": b"x"}}
    assert parse_event("trade.push", trade, received_ms=0).record["blob"] == b"x"


def test_a_stored_record_nested_deeper_than_python_recurses_is_checked_without_recursion():
    deep: list = [b"x"]
    for _ in range(5000):
        deep = [deep]
    payload = {**GOOD["rate.push"], "record": {**GOOD["rate.push"]["record"], "history": deep}}
    with pytest.raises(MalformedEvent, match="bytes"):
        parse_event("rate.push", payload, received_ms=0)
