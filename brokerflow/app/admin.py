"""The admin commands of PROTOCOL section 9: ``rules``, ``runs`` and ``process``, over the management API.

``rules apply`` is rules as code: a reviewed file in git is the truth and the engine is made to
match it. It validates every rule of the file first (the engine's own validation, plus: an
unknown field is an error here, not a warning) and changes nothing unless all are valid; it
prints the plan; ``--dry-run`` stops there. Applying the same file twice changes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from brokerflow.app import rulesfile
from brokerflow.app.adminapi import EXIT_INVALID, Admin, AdminError, add_api_options, print_json, table
from brokerflow.workflow.rules.as_code import (
    Plan,
    RulesFileError,
    export_document,
    make_plan,
    rules_of_document,
    update_body,
)

UNKNOWN_KEY = "unknown rule key, ignored"
PLAN_KINDS = ("create", "update", "archive", "unchanged")
RUN_COLUMNS = ("id", "rule_id", "brand", "trigger", "status", "event_id", "finished_at", "error")


def add_parsers(sub: Any) -> None:
    rules = sub.add_parser("rules", help="rules as code: export, apply, test").add_subparsers(
        dest="rules_command", required=True)
    export = rules.add_parser("export", help="the engine's non-archived rules as one YAML or JSON document")
    export.add_argument("--brand", help="only this brand's rules")
    export.add_argument("-o", "--output", metavar="FILE", help="write FILE (.yaml/.yml: YAML, else JSON); "
                        "default: JSON on stdout")
    add_api_options(export, "ignored: the document is JSON unless -o names a YAML file")
    apply = rules.add_parser("apply", help="make the engine's rules match FILE by (brand, name)")
    apply.add_argument("file", metavar="FILE", help="rules file (.yaml/.yml or .json)")
    apply.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    apply.add_argument("--prune", action="store_true", help="archive the rules of FILE's brands that FILE lacks")
    add_api_options(apply)
    test = rules.add_parser("test", help="dry run of FILE's rules against one event (no side effect)")
    test.add_argument("file", metavar="FILE", help="rules file (.yaml/.yml or .json)")
    test.add_argument("--event", required=True, metavar="EVENT.json",
                      help='the event as JSON: {"topic": "trade.push", "payload": {"event": ..., "record": {...}}}')
    add_api_options(test)

    runs = sub.add_parser("runs", help="the run log").add_subparsers(dest="runs_command", required=True)
    listing = runs.add_parser("list", help="runs, newest first")
    listing.add_argument("--rule", type=int, metavar="ID", help="only this rule's runs")
    listing.add_argument("--status", choices=("success", "failed", "skipped"), help="only runs of this status")
    listing.add_argument("--brand", help="only this brand's runs")
    listing.add_argument("--limit", type=int, default=20, metavar="N", help="at most N runs (default 20, max 1000)")
    listing.add_argument("--before", type=int, metavar="ID", help="runs older than run ID (paging)")
    add_api_options(listing)
    show = runs.add_parser("show", help="one run with its actions")
    show.add_argument("run_id", type=int, metavar="ID", help="the run's id")
    add_api_options(show)

    process = sub.add_parser("process", help="Workflow Machine processes").add_subparsers(
        dest="process_command", required=True)
    pshow = process.add_parser("show", help="a process: state, available events, history")
    pshow.add_argument("pid", metavar="PID", help="the process id")
    add_api_options(pshow)
    plist = process.add_parser("list", help="the most recently changed processes")
    plist.add_argument("--limit", type=int, default=20, metavar="N", help="at most N (default 20, max 200)")
    plist.add_argument("--active", action="store_true", help="only processes that have not ended")
    add_api_options(plist)


# -- rules ---------------------------------------------------------------------------------------
def _load(path: str) -> list[dict[str, Any]]:
    return rules_of_document(rulesfile.read(path), path)


def _where(rule: dict[str, Any]) -> str:
    return f"rule {rule.get('name')!r} (brand {rule.get('brand')!r})"


def validate_all(admin: Admin, path: str, rules: list[dict[str, Any]]) -> None:
    """Every problem of every rule, from the engine's validation; unknown fields are errors too."""
    problems = []
    for rule in rules:
        body = admin.call("MngValidateWorkflowRule", {"rule": rule})
        found = list(body.get("errors", []))
        found += [w for w in body.get("warnings", []) if w.get("message") == UNKNOWN_KEY]
        problems += [f"{_where(rule)}: {p.get('path')}: "
                     f"{'unknown field' if p.get('message') == UNKNOWN_KEY else p.get('message')}" for p in found]
    if problems:
        raise RulesFileError(path, problems)


def format_plan(plan: Plan) -> str:
    summary = plan.summary()
    return "\n".join(f"{kind:<10}{len(summary[kind]):>4}  {', '.join(summary[kind])}".rstrip()
                     for kind in PLAN_KINDS)


def execute(admin: Admin, plan: Plan) -> None:
    for rule in plan.create:
        admin.call("MngAddWorkflowRule", {"rule": rule})
    for current, wanted in plan.update:
        admin.call("MngUpdateWorkflowRule", {"id": current["id"], "version": current["version"],
                                             "rule": update_body(current, wanted)})
    for rule in plan.archive:
        admin.call("MngArchiveWorkflowRule", {"id": rule["id"]})


def cmd_rules(args: argparse.Namespace) -> int:
    if args.rules_command == "export":
        return rules_export(args)
    rules = _load(args.file)
    with Admin(args) as admin:
        if args.rules_command == "test":
            return rules_test(admin, args, rules)
        validate_all(admin, args.file, rules)
        plan = make_plan(rules, admin.call("MngGetWorkflowRules")["rules"], prune=args.prune)
        if not args.dry_run:
            execute(admin, plan)
    applied = not args.dry_run and plan.changes > 0
    if args.json:
        print_json({"plan": plan.summary(), "applied": applied, "dry_run": args.dry_run})
    else:
        print(format_plan(plan))
        print("dry run: nothing changed" if args.dry_run else f"applied {plan.changes} change(s)")
    return 0


def rules_export(args: argparse.Namespace) -> int:
    with Admin(args) as admin:
        params = {"brand": args.brand} if args.brand else {}
        doc = export_document(admin.call("MngGetWorkflowRules", params)["rules"])
    if not args.output:
        sys.stdout.write(rulesfile.dump(doc, as_yaml=False))
        return 0
    Path(args.output).write_text(rulesfile.dump(doc, rulesfile.is_yaml(args.output)), encoding="utf-8")
    print(f"wrote {len(doc)} rule(s) to {args.output}", file=sys.stderr)
    return 0


def _event_file(path: str) -> dict[str, Any]:
    event = rulesfile.read(path)
    if not isinstance(event, dict) or not isinstance(event.get("topic"), str) or "payload" not in event:
        raise AdminError(f"{path}: an event file is a map with topic (a string) and payload", EXIT_INVALID)
    return {"topic": event["topic"], "payload": event["payload"]}


def rules_test(admin: Admin, args: argparse.Namespace, rules: list[dict[str, Any]]) -> int:
    event = _event_file(args.event)
    results = []
    for rule in rules:
        body = admin.call("MngTestWorkflowRule", {"rule": rule, "event": event})
        results.append({"brand": rule.get("brand"), "name": rule.get("name"), **body})
    if args.json:
        print_json({"results": results})
        return 0
    rows = [{"brand": r["brand"], "rule": r["name"], "matched": "yes" if r.get("matched") else "no",
             "actions": ", ".join(str(a.get("type")) for a in r.get("actions", []) if isinstance(a, dict)),
             "why not": "; ".join(f"{c.get('field')} {c.get('op')} {json.dumps(c.get('value'))} "
                                  f"(actual {json.dumps(c.get('actual'), default=str)})"
                                  for c in r.get("conditions", []) if isinstance(c, dict) and not c.get("result"))}
            for r in results]
    print(table(rows, ("brand", "rule", "matched", "actions", "why not")))
    return 0


# -- runs and processes --------------------------------------------------------------------------
def cmd_runs(args: argparse.Namespace) -> int:
    with Admin(args) as admin:
        if args.runs_command == "show":
            found = admin.call("MngGetWorkflowRunLog", {"before_id": args.run_id + 1, "limit": 1})["runs"]
            if not found or found[0]["id"] != args.run_id:
                raise AdminError(f"run {args.run_id} not found (or not of your brand)")
            run = found[0]
            if args.json:
                print_json({"run": run})
                return 0
            print(table([run], RUN_COLUMNS[:-1]))
            if run.get("error"):
                print(f"\nerror: {run['error']}")
            print()
            print(table(run.get("actions", []), ("type", "status", "ms", "http_status", "error")))
            return 0
        params = {key: value for key, value in (("rule_id", args.rule), ("status", args.status), ("brand", args.brand),
                                                ("limit", args.limit), ("before_id", args.before)) if value is not None}
        runs = admin.call("MngGetWorkflowRunLog", params)["runs"]
    print_json({"runs": runs}) if args.json else print(table(runs, RUN_COLUMNS))
    return 0


def cmd_process(args: argparse.Namespace) -> int:
    if args.process_command == "list":
        with Admin(args) as admin:
            params = {"limit": args.limit, **({"ended": False} if args.active else {})}
            processes = admin.call("MngGetProcesses", params)["processes"]
        print_json({"processes": processes}) if args.json else print(
            table(processes, ("pid", "brand", "flow", "state", "status", "updated_at")))
        return 0
    with Admin(args) as admin:
        body = admin.call("AVAILABLE_EVENTS", {"pid": args.pid})
    if args.json:
        print_json(body)
        return 0
    if body.get("result") == "END":
        print(f"process {body.get('pid')}: ended")
        return 0
    print(f"process {body.get('pid')}: flow {body.get('flow')}, state {body.get('state')} ({body.get('result')})")
    print(f"available events: {', '.join(body.get('events', [])) or '(none)'}")
    print()
    print(table(body.get("history", []), ("id", "flow", "state", "title", "value", "status")))
    return 0


COMMANDS = {"rules": cmd_rules, "runs": cmd_runs, "process": cmd_process}
