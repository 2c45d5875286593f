"""The serving engine's collector policy: frozen startup heap, rarer young passes, opt-out."""

from __future__ import annotations

import subprocess
import sys

from brokerflow.settings import Settings

PROBE = """
import gc
from brokerflow.app import gcpolicy
before = gc.get_threshold()
print(gcpolicy.apply({gen0}) , gc.get_freeze_count() > 0, before)
"""


def _probe(gen0: int) -> str:
    return subprocess.run([sys.executable, "-c", PROBE.format(gen0=gen0)], check=True,
                          capture_output=True, text=True, timeout=30).stdout.strip()


def test_the_policy_freezes_the_startup_heap_and_raises_the_young_threshold():
    assert _probe(40_000) == "(40000, 20, 100) True (700, 10, 10)"


def test_zero_keeps_cpython_defaults():
    assert _probe(0) == "(700, 10, 10) False (700, 10, 10)"


def test_the_threshold_comes_from_the_environment_with_a_default():
    assert Settings.from_env({}).gc_gen0 == 50_000
    assert Settings.from_env({"BROKERFLOW_GC_GEN0": "0"}).gc_gen0 == 0
