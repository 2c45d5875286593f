"""ISO-8601 UTC text <-> unix milliseconds, without ever reading the clock."""

from __future__ import annotations

import pytest

from brokerflow.workflow.isotime import iso_ms, parse_iso_ms

NOON = 1795435200000  # 2026-11-23T12:00:00Z


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (NOON + 123, "2026-11-23T12:00:00.123Z"),
        (NOON, "2026-11-23T12:00:00.000Z"),
        (0, "1970-01-01T00:00:00.000Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (NOON + 7, "2026-11-23T12:00:00.007Z"),
    ],
)
def test_iso_ms_writes_utc_with_milliseconds_and_round_trips(ms, text):
    assert iso_ms(ms) == text
    assert parse_iso_ms(text) == ms


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2026-11-23T12:00:00Z", NOON),
        ("2026-11-23T12:00:00z", NOON),
        ("2026-11-23T12:00Z", NOON),
        ("2026-11-23 12:00:00Z", NOON),
        ("2026-11-23T14:00:00+02:00", NOON),
        ("2026-11-23T14:00:00+0200", NOON),
        ("2026-11-23T07:30:00-04:30", NOON),
        ("2026-11-23T12:00:00.5Z", NOON + 500),
        ("2026-11-23T12:00:00.123456Z", NOON + 123),
        ("2026-11-23T12:00:00,250Z", NOON + 250),
        ("  2026-11-23T12:00:00Z  ", NOON),
    ],
)
def test_parse_iso_ms_accepts_z_and_offsets(text, ms):
    assert parse_iso_ms(text) == ms


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-23T12:00:00",  # no zone: ambiguous, refused
        "2026-11-23",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-11-23T25:00:00Z",
        "2026-11-23T12:00:00+24:00",
        "tomorrow",
        "",
        "1795435200000",
    ],
)
def test_parse_iso_ms_refuses_anything_else(text):
    with pytest.raises(ValueError):
        parse_iso_ms(text)


@pytest.mark.parametrize("value", [None, 1795435200000, b"2026-11-23T12:00:00Z"])
def test_parse_iso_ms_refuses_non_strings_with_value_error(value):
    with pytest.raises(ValueError):
        parse_iso_ms(value)
