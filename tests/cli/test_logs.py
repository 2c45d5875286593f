"""``--log-format json``: one JSON object a line with ts, level, logger, message and the run's ids."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys

from brokerflow.actors.messages import RunJob
from brokerflow.app.logs import configure
from tests.conftest import wait_until

CLI = [sys.executable, "-m", "brokerflow"]


def test_a_json_line_carries_the_fields_and_the_ids_a_run_passes():
    stream = io.StringIO()
    configure("INFO", "json", stream)
    try:
        job = RunJob(41, 7, 1, "alpha", "process:signup.docs", "ev-9", (), {}, 0, extra={"pid": "p-1"})
        logging.getLogger("brokerflow.webhook").warning("webhook of run %s crashed", 41, extra=job.log_fields())
        logging.getLogger("brokerflow.engine").debug("not at INFO")
    finally:
        configure("WARNING", "text")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert list(line)[:4] == ["ts", "level", "logger", "message"]
    assert line["ts"].endswith("Z") and "T" in line["ts"]
    assert {k: line[k] for k in ("level", "logger", "message", "run_id", "rule_id", "event_id", "pid")} == {
        "level": "WARNING", "logger": "brokerflow.webhook", "message": "webhook of run 41 crashed",
        "run_id": 41, "rule_id": 7, "event_id": "ev-9", "pid": "p-1"}


def test_serve_logs_json_lines_and_an_unknown_log_level_is_refused(tmp_path):
    refused = subprocess.run([*CLI, "--log-level", "verbose", "demo"], capture_output=True, text=True, timeout=30)
    assert refused.returncode == 2 and "invalid choice: 'VERBOSE'" in refused.stderr
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([*CLI, "serve", "--log-format", "json", "--db", f"sqlite:///{tmp_path / 'e.db'}",
                                 "--no-http", "--events-bind", "tcp://127.0.0.1:0", "--api-bind", "tcp://127.0.0.1:0",
                                 "--pub-bind", "tcp://127.0.0.1:0"], stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "BROKERFLOW_LOG_LEVEL": "info"})
    try:
        wait_until(lambda: "engine started" in log_path.read_text() or proc.poll() is not None, timeout_s=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    started = next(line for line in lines if "engine started" in line["message"])
    assert (started["level"], started["logger"]) == ("INFO", "brokerflow.engine")
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    assert subprocess.run([*CLI, "--log-format", "json", "serve", "--help"], capture_output=True,
                          timeout=30).returncode == 0  # before the command works as well
