"""The admin CLI as people run it: subprocesses against a real engine, token and endpoint from the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import yaml

from tests.conftest import tcp_endpoint
from tests.runtime.conftest import make_runtime, notify  # noqa: F401 - fixtures

CLI = [sys.executable, "-m", "brokerflow"]

RULES_YAML = """\
big deposit:
  brand: alpha
  trigger: deposit.created
  conditions:
    - {field: amount_usd, op: ">=", value: 1000}
  actions:
    - type: notify.manager
      params: {message: "big deposit from {{trade.login}}"}
small deposit:
  brand: alpha
  trigger: deposit.created
  priority: 50
  conditions:
    - {field: amount_usd, op: "<", value: 1000}
  actions:
    - {type: notify.manager, params: {message: small}}
"""


def cli(*args: str, env: dict[str, str | None] | None = None, cwd: str | None = None) -> subprocess.CompletedProcess:
    """The CLI in a subprocess; a variable given as None is removed from its environment."""
    merged = {**os.environ, **(env or {})}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=30, cwd=cwd,
                          env={k: v for k, v in merged.items() if v is not None})


def engine_env(runtime) -> dict[str, str]:
    return {"BROKERFLOW_API": runtime.engine.api_endpoint, "BROKERFLOW_TOKEN": runtime.api.token}


def stored_rules(runtime) -> list[dict]:
    return runtime.call("MngGetWorkflowRules")["rules"]


def test_apply_plans_then_creates_is_idempotent_updates_prunes_and_export_gives_the_file_back(make_runtime, tmp_path):  # noqa: F811
    runtime = make_runtime(world=False)
    env = engine_env(runtime)
    path = tmp_path / "rules.yaml"
    path.write_text(RULES_YAML)
    dry = cli("rules", "apply", str(path), "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "create       2  alpha/big deposit, alpha/small deposit" in dry.stdout and "dry run" in dry.stdout
    assert stored_rules(runtime) == []
    assert cli("rules", "apply", str(path), env=env).returncode == 0
    assert sorted(r["name"] for r in stored_rules(runtime)) == ["big deposit", "small deposit"]
    again = cli("rules", "apply", str(path), "--json", env=env)
    assert json.loads(again.stdout)["plan"] == {"create": [], "update": [], "archive": [],
                                                "unchanged": ["alpha/big deposit", "alpha/small deposit"]}
    versions = {r["name"]: r["version"] for r in stored_rules(runtime)}
    changed = yaml.safe_load(RULES_YAML)
    changed["big deposit"]["priority"] = 10
    del changed["big deposit"]["conditions"]  # dropped from the file: gone from the rule too
    del changed["small deposit"]
    path.write_text(yaml.safe_dump(changed))
    pruned = cli("rules", "apply", str(path), "--prune", "--json", env=env)
    assert json.loads(pruned.stdout)["plan"] == {"create": [], "update": ["alpha/big deposit"],
                                                 "archive": ["alpha/small deposit"], "unchanged": []}
    after = {r["name"]: r for r in stored_rules(runtime)}
    assert after["big deposit"]["version"] == versions["big deposit"] + 1 and after["big deposit"]["priority"] == 10
    assert after["big deposit"]["conditions"] == [] and after["small deposit"]["status"] == "archived"
    assert json.loads(cli("rules", "apply", str(path), "--prune", "--json", env=env).stdout)["plan"]["unchanged"] == [
        "alpha/big deposit"]
    out = tmp_path / "export.yml"
    exported = cli("rules", "export", "-o", str(out), env=env)
    assert exported.returncode == 0 and "wrote 1 rule(s)" in exported.stderr
    assert yaml.safe_load(out.read_text()) == changed
    assert json.loads(cli("rules", "export", "--brand", "beta", env=env).stdout) == {}


def test_a_bad_rules_file_names_file_rule_and_path_and_applies_nothing(make_runtime, tmp_path):  # noqa: F811
    runtime = make_runtime(world=False)
    env = engine_env(runtime)
    bad = yaml.safe_load(RULES_YAML)
    bad["small deposit"]["conditions"][0]["op"] = "is about"
    bad["big deposit"]["colour"] = "red"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    refused = cli("rules", "apply", str(path), env=env)
    assert refused.returncode == 1 and refused.stdout == ""
    [line] = refused.stderr.splitlines()
    assert line.startswith(f"brokerflow: nothing applied: {path}: rule 'big deposit' (brand 'alpha'): colour: "
                           "unknown field; rule 'small deposit' (brand 'alpha'): conditions[0].op: ")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text('a: &a ["x","x"]\nb: [*a,*a]\n')
    refused = cli("rules", "apply", str(bomb), env=env)
    assert refused.returncode == 1 and "aliases (*name) are not allowed" in refused.stderr
    assert stored_rules(runtime) == []


def test_rules_test_runs_list_show_and_process_show(make_runtime, tmp_path):  # noqa: F811
    runtime = make_runtime()
    env = engine_env(runtime)
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(yaml.safe_load(RULES_YAML)))
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"topic": "trade.push", "payload": {"event": "EV_RECORD_ADD", "record": {
        "order": 1, "login": 1001, "cmd": "OP_BALANCE_IN", "profit": 2500.0}}}))
    tested = cli("rules", "test", str(path), "--event", str(event), env=env)
    assert tested.returncode == 0, tested.stderr
    rows = {line.split("  ")[1].strip(): line for line in tested.stdout.splitlines()[1:]}
    assert " yes " in rows["big deposit"] and "notify.manager" in rows["big deposit"]
    assert " no " in rows["small deposit"] and "amount_usd < 1000 (actual 2500.0)" in rows["small deposit"]
    rule = runtime.rule("deposit.created", [notify("hi <b>")], name="any deposit")
    runtime.deposit(1001, 10)
    run = runtime.wait_run(rule)
    listed = cli("runs", "list", "--rule", str(rule["id"]), "--status", "success", env=env)
    assert listed.returncode == 0 and listed.stdout.splitlines()[0].split()[:5] == [
        "ID", "RULE_ID", "BRAND", "TRIGGER", "STATUS"]
    assert listed.stdout.splitlines()[1].split()[:5] == [str(run["id"]), str(rule["id"]), "alpha",
                                                         "deposit.created", "success"]
    shown = cli("runs", "show", str(run["id"]), "--json", env=env)
    assert json.loads(shown.stdout)["run"]["id"] == run["id"]
    missing = cli("runs", "show", "999999", env=env)
    assert missing.returncode == 2
    assert missing.stderr.strip() == "brokerflow: run 999999 not found (or not of your brand)"
    runtime.call("MngAddFlow", {"flow": {"name": "signup", "initial": "personal", "states": {
        "personal": {"title": "Personal data", "on": {"next": "docs"}}, "docs": {"on": {"done": "end"}},
        "end": {"final": True}}}})
    pid = runtime.call("START", {"name": "signup"})["pid"]
    runtime.call("EVENT", {"pid": pid, "name": "next", "input": {"value": "ok"}})
    process = cli("process", "show", pid, env=env)
    assert process.returncode == 0, process.stderr
    assert f"process {pid}: flow signup, state docs" in process.stdout
    assert "available events: done" in process.stdout and "Personal data" in process.stdout
    listed = cli("process", "list", "--active", env=env)
    assert listed.returncode == 0 and listed.stdout.splitlines()[1].split()[:5] == [pid, "-", "signup", "docs",
                                                                                   "active"]


def test_an_engine_that_is_not_there_or_refuses_is_one_line_and_a_non_zero_exit(make_runtime, tmp_path):  # noqa: F811
    started = time.monotonic()
    gone = cli("runs", "list", "--api", tcp_endpoint(), "--token", "bf_x")
    assert gone.returncode == 3 and time.monotonic() - started < 15
    assert gone.stderr.count("\n") == 1 and "did not answer within 5 s" in gone.stderr
    runtime = make_runtime(world=False)
    bind = runtime.engine.api_endpoint.replace("127.0.0.1", "*")  # what serve was told: a wildcard
    refused = cli("stats", env={"BROKERFLOW_API_BIND": bind, "BROKERFLOW_TOKEN": "bf_wrong"})
    assert refused.returncode == 2 and refused.stderr.startswith("brokerflow: MngGetStats: UNAUTHENTICATED")
    ok = cli("stats", "--json", env={"BROKERFLOW_API_BIND": bind, "BROKERFLOW_TOKEN": runtime.api.token})
    assert ok.returncode == 0 and "runs" in json.loads(ok.stdout)
    assert cli("runs", "list", env={"BROKERFLOW_TOKEN": ""}).stderr.startswith("brokerflow: no token")


def test_token_create_says_where_it_wrote_then_list_and_revoke(tmp_path):
    default = cli("token", "create", "--role", "SESSION_ADMIN", env={"BROKERFLOW_DB": None}, cwd=str(tmp_path))
    assert default.returncode == 0 and "stored in sqlite:///brokerflow.db" in default.stderr
    db = f"sqlite:///{tmp_path / 'ops.db'}"
    made = cli("token", "create", "--role", "SESSION_DEALER", "--brand", "alpha", "--name", "desk",
               env={"BROKERFLOW_DB": db})
    token = made.stdout.strip()
    assert made.returncode == 0 and token.startswith("bf_") and f"stored in {db}" in made.stderr
    listed = cli("token", "list", "--json", env={"BROKERFLOW_DB": db})
    tokens = json.loads(listed.stdout)["tokens"]
    assert [(t["role"], t["brand"], t["name"], t["revoked"]) for t in tokens] == [
        ("SESSION_DEALER", "alpha", "desk", False)]
    assert token not in listed.stdout
    assert cli("token", "revoke", str(tokens[0]["id"]), "--db", db).stdout.strip() == f"token {tokens[0]['id']} revoked"
    assert "True" in cli("token", "list", "--db", db).stdout
    again = cli("token", "revoke", str(tokens[0]["id"]), "--db", db)
    assert again.returncode == 2 and "no live token" in again.stderr


def test_every_option_of_every_command_has_help_text():
    from brokerflow.app.cli import build_parser

    def walk(parser, path):
        for action in parser._actions:  # argparse keeps no public list of its options
            if action.choices and hasattr(action, "_name_parser_map"):
                for name, sub in action._name_parser_map.items():
                    yield from walk(sub, f"{path} {name}")
            elif action.dest != "help":
                yield path, action

    missing = [f"{path} {action.option_strings or action.dest}" for path, action in walk(build_parser(), "brokerflow")
               if not action.help]
    assert missing == []
