"""Unix milliseconds <-> ISO-8601 UTC text. Never reads the clock: callers pass the time in.

Storage keeps ints; the API shows ``2026-11-23T12:00:00.123Z``. Parsing is a strict regular
expression rather than ``datetime.fromisoformat`` so every supported Python accepts the same
texts, and a time without a zone is refused instead of silently meaning local time.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_MS = timedelta(milliseconds=1)
_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"\s*(?:([Zz])|([+-])(\d{2}):?(\d{2}))"
)


def iso_ms(ms: int) -> str:
    """``1795435200123`` -> ``'2026-11-23T12:00:00.123Z'`` (always millisecond precision, UTC)."""
    moment = _EPOCH + timedelta(milliseconds=ms)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def _zone(sign: str | None, hours: str | None, minutes: str | None) -> timezone:
    if sign is None:
        return timezone.utc
    offset = timedelta(hours=int(hours or 0), minutes=int(minutes or 0))
    if offset >= timedelta(hours=24):
        raise ValueError("utc offset out of range")
    return timezone(-offset if sign == "-" else offset)


def parse_iso_ms(text: str) -> int:
    """ISO-8601 date-time with ``Z`` or an offset -> unix ms; ``ValueError`` for anything else."""
    match = _ISO.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"not an ISO-8601 date-time with a time zone: {text!r}")
    year, month, day, hour, minute, second, fraction, _z, sign, off_h, off_m = match.groups()
    moment = datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second or 0),
        tzinfo=_zone(sign, off_h, off_m),
    )
    millis = int((fraction or "0")[:3].ljust(3, "0"))
    return (moment - _EPOCH) // _ONE_MS + millis
