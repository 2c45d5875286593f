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


# -- webhook signing secrets and CA ---------------------------------------------------------------
def test_webhook_secrets_come_from_flags_or_the_environment_and_never_show(monkeypatch, tmp_path):
    args = build_parser().parse_args(["serve", "--webhook-secret", "crm=raw-secret-1",
                                      "--webhook-secret", "psp=whsec_c2VjcmV0"])
    settings = settings_from(args)
    assert dict(settings.webhook_secrets) == {"crm": "raw-secret-1", "psp": "whsec_c2VjcmV0"}
    assert "raw-secret-1" not in repr(settings) and "crm" in repr(settings)
    monkeypatch.setenv("BROKERFLOW_WEBHOOK_SECRET", "a=one, b=two=")
    assert dict(settings_from(build_parser().parse_args(["serve"])).webhook_secrets) == {"a": "one", "b": "two="}


@pytest.mark.parametrize("entry", ["nameonly", "=secret-x", "crm=", "crm=whsec_***secret-x"])
def test_a_bad_webhook_secret_is_refused_without_showing_it(entry, tmp_path):
    base = [sys.executable, "-m", "brokerflow", "serve", "--db", f"sqlite:///{tmp_path / 'x.db'}"]
    flag = subprocess.run(base + ["--webhook-secret", entry], capture_output=True, text=True, timeout=60)
    assert flag.returncode == 2 and "--webhook-secret" in flag.stderr and "secret-x" not in flag.stderr
    env = subprocess.run(base, capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "BROKERFLOW_WEBHOOK_SECRET": f"ok=fine,{entry}"})
    assert env.returncode == 2 and "BROKERFLOW_WEBHOOK_SECRET entry 2" in env.stderr
    assert "secret-x" not in env.stderr


def test_a_webhook_ca_that_cannot_be_loaded_stops_serve_with_exit_2(tmp_path):
    base = [sys.executable, "-m", "brokerflow", "serve", "--db", f"sqlite:///{tmp_path / 'x.db'}"]
    missing = subprocess.run(base + ["--webhook-ca", str(tmp_path / "none.pem")], capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 2 and "--webhook-ca" in missing.stderr
    junk = tmp_path / "junk.pem"
    junk.write_text("junk")
    env = subprocess.run(base, capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "BROKERFLOW_WEBHOOK_CA": str(junk)})
    assert env.returncode == 2 and "BROKERFLOW_WEBHOOK_CA" in env.stderr and "not a PEM" in env.stderr


def test_the_cluster_options_come_from_flags_or_the_environment(monkeypatch):
    settings = settings_from(build_parser().parse_args(
        ["serve", "--cluster", "--partitions", "128", "--member", "eu-1", "--advertise", "tcp://eu-1:5557",
         "--lease-ttl-s", "9"]))
    assert (settings.cluster, settings.partitions, settings.member, settings.advertise, settings.lease_ttl_s) == (
        True, 128, "eu-1", "tcp://eu-1:5557", 9.0)
    assert not settings_from(build_parser().parse_args(["serve"])).cluster
    for key, value in (("BROKERFLOW_CLUSTER", "1"), ("BROKERFLOW_PARTITIONS", "32"), ("BROKERFLOW_MEMBER", "us-2"),
                       ("BROKERFLOW_ADVERTISE", "tcp://us-2:5557"), ("BROKERFLOW_LEASE_TTL_S", "4.5")):
        monkeypatch.setenv(key, value)
    settings = settings_from(build_parser().parse_args(["serve", "--partitions", "16"]))
    assert (settings.cluster, settings.partitions, settings.member, settings.advertise, settings.lease_ttl_s) == (
        True, 16, "us-2", "tcp://us-2:5557", 4.5)
    monkeypatch.setenv("BROKERFLOW_PARTITIONS", "0")
    with pytest.raises(ValidationFailed):
        settings_from(build_parser().parse_args(["serve"]))


def test_serve_cluster_refuses_a_lease_too_short_to_renew_in_time_in_one_line(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "brokerflow", "serve", "--cluster", "--db",
                             "postgresql://nobody@127.0.0.1:1/none", "--lease-ttl-s", "4"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--lease-ttl-s must be at least 5 s" in result.stderr and len(result.stderr.strip().splitlines()) == 1
