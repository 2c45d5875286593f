"""Engine tuning from flags and ``BROKERFLOW_*`` variables: flags win, bad values are named."""

from __future__ import annotations

import subprocess
import sys

import pytest

from brokerflow.app.cli import build_parser, settings_from
from brokerflow.errors import ValidationFailed
from brokerflow.settings import Settings

FLAGS = ["serve", "--webhook-workers", "8", "--process-workers", "2", "--process-live-cap", "50",
         "--process-idle-s", "2.5", "--ingress-max-inflight", "16"]


def test_the_tuning_flags_reach_the_settings():
    settings = settings_from(build_parser().parse_args(FLAGS))
    assert (settings.webhook_workers, settings.process_workers, settings.process_live_cap,
            settings.process_idle_s, settings.ingress_max_inflight) == (8, 2, 50, 2.5, 16)


def test_the_environment_sets_them_and_a_flag_wins(monkeypatch):
    monkeypatch.setenv("BROKERFLOW_PROCESS_WORKERS", "3")
    monkeypatch.setenv("BROKERFLOW_PROCESS_IDLE_S", "0.5")
    monkeypatch.setenv("BROKERFLOW_WEBHOOK_WORKERS", "32")
    monkeypatch.setenv("BROKERFLOW_INGRESS_MAX_INFLIGHT", "8")
    settings = settings_from(build_parser().parse_args(["serve", "--process-workers", "5"]))
    assert (settings.process_workers, settings.process_idle_s, settings.webhook_workers) == (5, 0.5, 32)
    assert settings.ingress_max_inflight == 8
    assert settings.process_live_cap == Settings().process_live_cap


@pytest.mark.parametrize(("key", "text"), [("BROKERFLOW_PROCESS_WORKERS", "0"), ("BROKERFLOW_PROCESS_WORKERS", "2.5"),
                                           ("BROKERFLOW_PROCESS_IDLE_S", "nan"), ("BROKERFLOW_PROCESS_IDLE_S", "-1"),
                                           ("BROKERFLOW_WEBHOOK_WORKERS", "many"), ("BROKERFLOW_GC_GEN0", "-5"),
                                           ("BROKERFLOW_PROCESS_LIVE_CAP", "inf"),
                                           ("BROKERFLOW_INGRESS_MAX_INFLIGHT", "0")])
def test_a_bad_value_is_refused_by_name(key, text):
    with pytest.raises(ValidationFailed) as refused:
        Settings.from_env({key: text})
    assert key in refused.value.text and repr(text) in refused.value.text


def test_the_cli_refuses_bad_tuning_with_exit_2_and_a_clear_line(tmp_path):
    base = [sys.executable, "-m", "brokerflow", "serve", "--db", f"sqlite:///{tmp_path / 'x.db'}"]
    flag = subprocess.run(base + ["--process-workers", "0"], capture_output=True, text=True, timeout=60)
    assert flag.returncode == 2 and "--process-workers: must be a whole number > 0, got '0'" in flag.stderr
    env = subprocess.run(base, capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "BROKERFLOW_PROCESS_IDLE_S": "soon"})
    assert env.returncode == 2
    assert "VALIDATION_FAILED: BROKERFLOW_PROCESS_IDLE_S must be a number > 0, got 'soon'" in env.stderr


def test_event_retention_hours_default_to_a_week_and_come_from_the_flag_or_the_environment(monkeypatch):
    assert settings_from(build_parser().parse_args(["serve"])).event_retention_hours == 168
    zero = settings_from(build_parser().parse_args(["serve", "--event-retention-hours", "0"]))
    assert zero.event_retention_hours == 0
    monkeypatch.setenv("BROKERFLOW_EVENT_RETENTION_HOURS", "24")
    assert settings_from(build_parser().parse_args(["serve"])).event_retention_hours == 24
    with pytest.raises(ValidationFailed):
        Settings.from_env({"BROKERFLOW_EVENT_RETENTION_HOURS": "-1"})
