"""The ``brokerflow bench`` entry point takes the benchmark's own options."""

import subprocess
import sys

import pytest


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


def test_the_replay_cost_measures_an_engine_with_and_without_replay_behind_a_real_relay(tmp_path):
    from brokerflow.app.benchreplay import measure_replay_cost

    def world(engine):  # one brand's broad deposit and trade rules: the bench's 2,200 records take 10 s a side
        engine.client.call("MngUpsertGroup", {"record": {"group": "g", "brand": "alpha", "currency": "USD"}})
        for trigger in ("deposit.created", "trade.opened", "trade.closed", "withdrawal.created"):
            engine.client.call("MngAddWorkflowRule", {"rule": {
                "name": f"every {trigger}", "brand": "alpha", "trigger": trigger,
                "actions": [{"type": "customer.set_risk_level", "params": {"risk_level": "high"}}]}})

    figures = measure_replay_cost(300, str(tmp_path), "http://127.0.0.1:9/unused", world=world)
    without, with_replay = figures["without"], figures["with"]
    assert (without["mode"], with_replay["mode"]) == ("without_replay", "with_replay")
    for side in (without, with_replay):
        assert (side["events"], side["lost"], side["failed_runs"], side["stop_exit_code"]) == (300, 0, 0, 0)
        assert side["events_per_s"] > 0 and side["cpu_us_per_event"] > 0
    assert figures["cost"] == round(1 - with_replay["events_per_s"] / without["events_per_s"], 3)


def test_the_crash_run_kills_serve_mid_stream_and_counts_nothing_lost_nothing_doubled():
    import json

    result = subprocess.run([sys.executable, "-m", "brokerflow", "bench", "--crash", "--events", "400",
                             "--crash-rate", "2000", "--crash-down-seconds", "0.3"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "lost 0  doubled 0" in result.stdout
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["sent_at_kill"] < 400 and figures["runs_at_kill"] < 400  # killed mid-stream
    assert (figures["lost"], figures["doubled"], figures["unknown"]) == (0, 0, 0)
    assert figures["runs"] == 400 and figures["journaled"] == 400
    assert figures["recovered_s"] is not None and figures["stop_exit_code"] == 0


@pytest.mark.timeout(240)
def test_the_sharded_phase_runs_serve_with_that_many_shards_loses_nothing_and_measures_latency_and_wm(tmp_path):
    from brokerflow.app.bench import measure_sharded

    hooks = "http://127.0.0.1:9/unused"  # the bench world's webhook rules fail fast: not what is measured here
    figures = measure_sharded(2, 300, str(tmp_path), hooks, one_rate=1000, rates=(400,), fixed_seconds=1.0,
                              wm_clients=(2,), wm_seconds=1.0)
    assert figures["shards"] == 2 and figures["max_rate"]["shard_processes"] == 2
    assert (figures["max_rate"]["received"], figures["max_rate"]["lost"], figures["stop_exit_code"]) == (300, 0, 0)
    assert figures["max_rate"]["runs"] > 300  # the bench's world: about 1.2 runs per event, each logged once
    assert figures["ratio_to_one"] == round(figures["max_rate"]["events_per_s"] / 1000, 2)
    [fixed] = figures["fixed_rates"]
    assert (fixed["rate"], fixed["events"]) == (400, 400) and fixed["runs"] > 400
    assert 0 <= fixed["p50_ms"] <= fixed["p99_ms"] <= fixed["max_ms"]
    [workflow] = figures["workflow"]
    assert workflow["clients"] == 2 and workflow["commands"] > 0 and workflow["p99_ms"] >= workflow["p50_ms"]
