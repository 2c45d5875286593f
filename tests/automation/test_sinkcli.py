"""``brokerflow sink sign`` in a subprocess, against the secret the engine uses."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from urllib.parse import parse_qs, urlsplit

import requests

from brokerflow.storage import open_store
from brokerflow.workflow.modes.sinks import verify


def sign_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BROKERFLOW_")}
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "brokerflow", "sink", "sign", *args], capture_output=True,
                          text=True, timeout=60, env=environ)


def test_the_printed_url_works_against_an_engine_on_the_same_database(make_auto, sqlite_url):
    auto = make_auto(secret=None)
    rule = auto.add_rule(trigger="sink.request", run_as=7,
                         conditions=[{"field": "request.route", "op": "==", "value": "leads/new"}],
                         actions=[{"type": "sink.respond", "params": {"body": "thanks"}}])
    done = sign_cli("leads/new", "--db", sqlite_url, "--base-url", auto.http, "--expires-in", "600")
    assert done.returncode == 0, done.stderr
    printed = done.stdout.strip()
    assert printed.startswith(f"{auto.http}/sink/leads/new?__sign=") and "__expires=" in printed
    reply = requests.post(printed, timeout=10)
    assert (reply.status_code, reply.text) == (200, "thanks")
    assert len(auto.wait_runs(1, rule_id=rule["id"])) == 1
    assert requests.get(printed, timeout=10).status_code == 401  # signed for POST only


def test_a_database_without_a_secret_gets_the_one_the_engine_will_use(sqlite_url):
    done = sign_cli("ping", "--db", sqlite_url, "--method", "GET")
    assert done.returncode == 0, done.stderr
    store = open_store(sqlite_url)
    try:
        secret = store.meta.get("server_secret")
    finally:
        store.close()
    parts = urlsplit(done.stdout.strip())
    assert parts.netloc == "127.0.0.1:8080" and parts.path == "/sink/ping"
    verify(secret, "GET", "ping", {k: v[0] for k, v in parse_qs(parts.query).items()}, int(time.time() * 1000))


def test_an_explicit_secret_wins_and_bad_options_are_refused(sqlite_url):
    done = sign_cli("ping", "--secret", "s3", "--method", "ANY", env={"BROKERFLOW_HTTP": "10.0.0.5:9000"})
    assert done.returncode == 0, done.stderr
    parts = urlsplit(done.stdout.strip())
    assert parts.netloc == "10.0.0.5:9000"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    verify("s3", "PATCH", "ping", query, int(time.time() * 1000))
    bad = sign_cli("ping", "--secret", "s3", "--method", "BREW")
    assert bad.returncode == 2 and "VALIDATION_FAILED" in bad.stderr
    bad = sign_cli("ping", "--secret", "s3", "--expires-in", "0")
    assert bad.returncode == 2
