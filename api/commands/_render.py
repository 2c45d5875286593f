"""Stored records as the API shows them: unix-ms timestamps become ISO-8601 UTC text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from brokerflow.workflow.isotime import iso_ms

TIME_FIELDS = ("created_at", "updated_at", "started_at", "finished_at")


def with_iso_times(record: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(record)
    for name in TIME_FIELDS:
        value = out.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            out[name] = iso_ms(value)
    return out
