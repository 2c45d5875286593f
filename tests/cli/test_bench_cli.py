"""The ``brokerflow bench`` entry point takes the benchmark's own options."""

import subprocess
import sys


def test_bench_accepts_its_own_options_through_the_brokerflow_command():
    result = subprocess.run([sys.executable, "-m", "brokerflow", "bench", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "--events" in result.stdout and "--rates" in result.stdout
