"""The fast path of ``parse_event`` agrees with the full check on every payload, valid or not."""

from __future__ import annotations

import enum
import random

import pytest

from brokerflow.errors import MalformedEvent
from brokerflow.workflow.events import RECORD_SCHEMAS, _parse_checked, parse_event


class Level(enum.IntEnum):
    ONE = 1


class Text(str):
    pass


ODD_VALUES = [None, True, False, 0, 7, -3, 1.5, float("inf"), "x", "", b"raw", [1], {"a": 1},
              Level.ONE, Text("t"), 2**70]
SAMPLES = {"int": 42, "number": 1.25, "str": "EURUSD", "bool": True}
EVENTS = ["EV_RECORD_ADD", "EV_RECORD_CLOSE_TRADE", "EV_SOMETHING", None, 5, ["EV_RECORD_ADD"], {"a": 1}]


def _payload(rng: random.Random, topic: str) -> object:
    required, optional = RECORD_SCHEMAS[topic]
    record: dict = {name: SAMPLES[kind] for name, kind in required.items()}
    record.update({name: SAMPLES[kind] for name, kind in optional.items() if rng.random() < 0.6})
    for _ in range(rng.choice((0, 0, 1, 2))):  # spoil a field now and then
        record[rng.choice(list(required) + list(optional) + ["extra"])] = rng.choice(ODD_VALUES)
    if rng.random() < 0.05:
        record[b"bin"] = 1
    payload: dict = {"event": rng.choice(EVENTS), "record": record}
    for name, good in (("id", "ev-1"), ("source", "mt5"), ("seq", 9), ("ts", 1_700_000_000_000)):
        roll = rng.random()
        if roll < 0.6:
            payload[name] = good
        elif roll < 0.75:
            payload[name] = rng.choice(ODD_VALUES)
    if rng.random() < 0.03:
        payload["record"] = rng.choice(ODD_VALUES)
    if rng.random() < 0.02:
        return rng.choice(ODD_VALUES)
    return payload


def _outcome(parse, topic: str, payload: object) -> object:
    try:
        return parse(topic, payload, 5, 1)
    except MalformedEvent as exc:
        return ("malformed", exc.text)


@pytest.mark.parametrize("seed", range(6))
def test_fast_and_full_paths_give_the_same_event_or_the_same_reason(seed):
    rng = random.Random(seed)
    topics = list(RECORD_SCHEMAS) + ["nope.push"]
    accepted = 0
    for _ in range(3000):
        topic = rng.choice(topics)
        payload = _payload(rng, topic if topic in RECORD_SCHEMAS else "trade.push")
        fast, full = _outcome(parse_event, topic, payload), _outcome(_parse_checked, topic, payload)
        assert fast == full, (topic, payload)
        accepted += not isinstance(fast, tuple)
    assert 300 < accepted < 2700  # both outcomes were exercised


def test_the_record_is_the_events_own_copy():
    record = {"currency": "EUR", "usd": 1.08}
    event = parse_event("rate.push", {"record": record}, 0)
    record["usd"] = 2.0
    assert event.record["usd"] == 1.08


def test_the_shape_cache_keeps_no_record_with_large_keys():
    # A cached shape holds its keys: 1024 shapes of a megabyte of keys each would be a gigabyte.
    from brokerflow.workflow import events

    events._PLAIN_SHAPES.clear()
    long_key = {"currency": "EUR", "usd": 1.0, "k" * 2000: 1}
    many_keys = {"currency": "EUR", "usd": 1.0, **{f"f{index}": index for index in range(100)}}
    for record in (long_key, many_keys):
        assert parse_event("rate.push", {"record": record}, 0).record == record
    assert events._PLAIN_SHAPES == {}
    parse_event("rate.push", {"record": {"currency": "EUR", "usd": 1.0, "note": "n"}}, 0)
    assert len(events._PLAIN_SHAPES) == 1
