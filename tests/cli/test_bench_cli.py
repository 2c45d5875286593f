"""The ``brokerflow bench`` entry point takes the benchmark's own options."""

import subprocess
import sys


def test_bench_accepts_its_own_options_through_the_brokerflow_command():
    result = subprocess.run([sys.executable, "-m", "brokerflow", "bench", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "--events" in result.stdout and "--rates" in result.stdout


def test_the_hot_path_benchmark_runs_every_stage_and_logs_the_runs():
    import json
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "bench_hotpath.py"
    result = subprocess.run([sys.executable, str(script), "--events", "900", "--batch", "300"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["events"] == 600
    assert set(figures["us_per_event"]) == {"decode", "router", "rules", "notifier", "customer", "kyc", "runlog",
                                            "history"}
    assert all(value > 0 for value in figures["us_per_event"].values())
    assert figures["runs_logged"] > 600  # about 1.2 runs per event, every one written


def test_the_transport_latency_floor_receives_every_event_of_the_paced_publisher(tmp_path):
    from brokerflow.app.bench import measure_transport_latency

    floor = measure_transport_latency(2000, 0.5, str(tmp_path))
    assert (floor["rate"], floor["events"], floor["received"]) == (2000, 1000, 1000)
    assert 0 <= floor["p50_ms"] <= floor["p99_ms"] <= floor["max_ms"] < 5000


def test_the_relay_benchmark_passes_every_event_through_a_real_relay_that_stamps_them(tmp_path):
    from brokerflow.app.benchrelay import measure_relay

    figures = measure_relay(2000, str(tmp_path), stamping=True)
    assert (figures["mode"], figures["received"], figures["lost"]) == ("stamping", 2000, 0)
    assert figures["stop_exit_code"] == 0
    assert figures["events_per_s"] > 0
