"""``brokerflow bench`` tells what it is doing and draws its figures (``--plot FILE``)."""

from __future__ import annotations

import io
import subprocess
import sys

from brokerflow.app.benchprogress import Progress
from brokerflow.app.benchreport import plot, table

RESULT = {
    "machine": "2 cores, x86_64, Python 3.11.7", "ceiling": {"events": 2000, "events_per_s": 7766, "received": 2000},
    "max_rate": {"elapsed_s": 0.55, "events": 2000, "events_per_s": 3636, "failed_runs": 0, "lost": 0,
                 "received": 2000, "runs": 2323, "runs_per_event": 1.16},
    "fixed_rates": [{"events": 500, "max_ms": 35, "p50_ms": 8, "p99_ms": 30, "rate": 1000, "runs": 574},
                    {"events": 2500, "max_ms": 80, "p50_ms": 12, "p99_ms": 61, "rate": 5000, "runs": 2900}],
    "transport_latency": [{"events": 500, "max_ms": 9, "p50_ms": 0, "p99_ms": 8, "rate": 1000, "received": 500},
                          {"events": 2500, "max_ms": 12, "p50_ms": 1, "p99_ms": 9, "rate": 5000, "received": 2500}],
    "workflow": [{"clients": 1, "commands": 174, "p50_ms": 0.58, "p99_ms": 36.43, "per_s": 580},
                 {"clients": 8, "commands": 285, "p50_ms": 3.79, "p99_ms": 117.09, "per_s": 950}],
    "peak_rss_mb": 76.5, "ratio_to_ceiling": 0.468, "rules": 200, "stop_exit_code": 0,
}


class Ticks:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_names_each_phase_and_reports_at_most_once_a_second():
    out, clock = io.StringIO(), Ticks()
    progress = Progress(3, out, every_s=1.0, clock=clock)
    progress.phase("engine max rate")
    progress.tick(10, 100, "events received")
    clock.now += 0.5
    progress.tick(20, 100, "events received")  # too soon: not printed
    clock.now += 0.6
    progress.tick(45_000, 100_000, "events received")
    clock.now += 1.4
    progress.done("3,636 events/s")
    assert out.getvalue().splitlines() == [
        "[1/3] engine max rate",
        "      10/100 events received (10%), 0 s",
        "      45,000/100,000 events received (45%), 1 s",
        "      3,636 events/s in 2.5 s",
    ]


def test_the_chart_is_a_png_and_the_table_keeps_its_lines(tmp_path):
    path = tmp_path / "bench.png"
    plot(RESULT, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    lines = table(RESULT).splitlines()
    assert lines[1] == "ceiling (PUB→SUB + decode)       7,766 events/s"
    assert sum("latency" in line for line in lines) == 2


def test_bench_help_lists_plot_and_quiet():
    result = subprocess.run([sys.executable, "-m", "brokerflow", "bench", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "--plot FILE" in result.stdout and "--quiet" in result.stdout
