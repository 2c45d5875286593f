"""Logging for the CLI: ``--log-format text`` (the default, for people) or ``json`` (for collectors).

A JSON line carries ``ts`` (ISO 8601, UTC, milliseconds), ``level``, ``logger`` and ``message``,
then whatever the call gave as ``extra=``: the run and event paths pass ``event_id``,
``run_id``, ``rule_id`` and ``pid`` (``RunJob.log_fields``), so one run can be followed
through the engine with a query. python-json-logger does the encoding.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class BrokerflowJsonFormatter(JsonFormatter):
    """``{"ts", "level", "logger", "message", ...extra}``, in that order."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s %(message)s",
                         rename_fields={"levelname": "level", "name": "logger"})

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        stamp = datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
        ordered = {"ts": stamp.replace("+00:00", "Z"), **log_data}
        log_data.clear()
        log_data.update(ordered)


def configure(level: str, log_format: str = "text", stream: TextIO | None = None) -> None:
    """One handler on the root logger, replacing any earlier one (tests call ``main`` more than once)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(BrokerflowJsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level))
    logging.captureWarnings(True)  # Python's warnings become log records too: every stderr line is one format
