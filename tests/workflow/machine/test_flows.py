"""Flow validation: every problem with its path, and never an exception on wrong types."""

from __future__ import annotations

import copy
import json

import pytest

from brokerflow.errors import ValidationFailed
from brokerflow.workflow.machine.flows import (
    FLOW_ACTION_TYPES,
    can_finish,
    check_flow,
    final_states,
    flow_warnings,
    reachable,
    subflow_cycle,
    transitions,
    validate_flow,
)

ONBOARDING = {
    "name": "onboarding", "title": "Onboarding", "initial": "personal",
    "states": {
        "personal": {"title": "Personal data", "on": {"next": "docs"}, "boStepCode": "PD",
                     "hints": [{"elementCode": "email",
                                "hintTexts": [{"text": "Your e-mail", "hintTextType": "FIELD"}]}]},
        "docs": {"on": {"submit": "check", "back": "personal", "bank": "bank"},
                 "actions": [{"type": "notify.manager", "params": {"message": "docs step"}}]},
        "check": {"subflow": "kyc_check", "on": {"approved": "done", "rejected": "docs"}},
        "bank": {"external": {"url": "https://bank.example/pay"}, "on": {"return": "done"}},
        "done": {"final": True},
    },
}
KYC = {"name": "kyc_check", "initial": "upload", "states": {
    "upload": {"on": {"ok": "approved", "bad": "rejected"}},
    "approved": {"final": True}, "rejected": {"final": True}}}
KNOWN = {"kyc_check": KYC}


def flow(**changes: object) -> dict:
    """ONBOARDING with dotted-path changes; a value of ``...`` deletes the key."""
    result = copy.deepcopy(ONBOARDING)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = result
        for key in parents:
            node = node[key]
        if value is ...:
            del node[last]
        else:
            node[last] = value
    return result


def paths(problems: list[dict]) -> list[str]:
    return [p["path"] for p in problems]


def test_the_protocol_example_is_valid() -> None:
    assert validate_flow(ONBOARDING, KNOWN) == []
    assert validate_flow(KYC, {}) == []


PROBLEMS = [
    ("missing name", flow(name=...), "name", "is required"),
    ("name not a string", flow(name=5), "name", "must be"),
    ("name with spaces", flow(name="on boarding"), "name", "must be"),
    ("title not a string", flow(title=["x"]), "title", "must be a string"),
    ("missing initial", flow(initial=...), "initial", "is required"),
    ("initial not a state", flow(initial="nowhere"), "initial", "names no state"),
    ("initial wrong type", flow(initial=3), "initial", "names no state"),
    ("states missing", flow(states=...), "states", "non-empty map"),
    ("states empty", flow(states={}), "states", "non-empty map"),
    ("states a list", flow(states=["a"]), "states", "non-empty map"),
    ("state not a map", flow(states__bank="x", states__docs__on={"submit": "check"}), "states.bank", "a map"),
    ("unknown target", flow(states__docs__on__submit="chek"), "states.docs.on.submit", "unknown target"),
    ("target not a string", flow(states__docs__on__submit=1), "states.docs.on.submit", "state name"),
    ("on not a map", flow(states__personal__on=["docs"]), "states.personal.on", "must be a map"),
    ("empty event name", flow(states__personal__on={"": "docs"}), "states.personal.on.", "event names"),
    ("unreachable state", flow(states__docs__on={"submit": "check"}), "states.bank", "unreachable"),
    ("no path to a final", flow(states__bank__on={"return": "bank"}), "states.bank", "no path to a final"),
    ("no final state", flow(states__done={"on": {"again": "personal"}}), "states", "no final state"),
    ("final with on", flow(states__done__on={"again": "personal"}), "states.done.on", "no outgoing"),
    ("final not a bool", flow(states__bank__final="yes"), "states.bank.final", "true or false"),
    ("final and external", flow(states__bank__final=True), "states.bank", "exclude each other"),
    ("unknown state key", flow(states__done__fianl=True), "states.done.fianl", "unknown key"),
    ("boStepCode not a string", flow(states__personal__boStepCode=7), "states.personal.boStepCode", "string"),
    ("unknown subflow", flow(states__check__subflow="kyc"), "states.check.subflow", "unknown flow 'kyc'"),
    ("subflow not a name", flow(states__check__subflow=""), "states.check.subflow", "flow name"),
    ("subflow without on", flow(states__check__on=..., states__docs__on={"x": "bank"},
                                states__personal__on={"next": "docs", "c": "check"}),
     "states.check.on", "must handle the child's outcomes"),
    ("external without url", flow(states__bank__external={}), "states.bank.external.url", "is required"),
    ("external not a map", flow(states__bank__external="https://x"), "states.bank.external.url", "required"),
    ("hints not a list", flow(states__personal__hints={"a": 1}), "states.personal.hints", "must be a list"),
    ("hint without elementCode", flow(states__personal__hints=[{"hintTexts": []}]),
     "states.personal.hints.0", "elementCode"),
    ("hintTexts not a list", flow(states__personal__hints=[{"elementCode": "e", "hintTexts": "t"}]),
     "states.personal.hints.0", "hintTexts"),
    ("hint text badly shaped",
     flow(states__personal__hints=[{"elementCode": "e", "hintTexts": [{"text": 1}]}]),
     "states.personal.hints.0.hintTexts.0", "hintTextType"),
    ("actions not a list", flow(states__docs__actions={"type": "x"}), "states.docs.actions", "a list"),
    ("action not a map", flow(states__docs__actions=["notify"]), "states.docs.actions.0", "must be a map"),
    ("unknown action type", flow(states__docs__actions=[{"type": "nope", "params": {}}]),
     "states.docs.actions.0.type", "must be one of"),
    ("inline action type", flow(states__docs__actions=[{"type": "record.set", "params": {}}]),
     "states.docs.actions.0.type", "must be one of"),
    ("action params not a map", flow(states__docs__actions=[{"type": "notify.manager", "params": []}]),
     "states.docs.actions.0.params", "must be a map"),
    ("required action param", flow(states__docs__actions=[{"type": "notify.manager", "params": {}}]),
     "states.docs.actions.0.params.message", "is required"),
    ("action param type", flow(states__docs__actions=[
        {"type": "notify.manager", "params": {"message": "m", "manager_id": True}}]),
     "states.docs.actions.0.params.manager_id", "must be integer"),
]


@pytest.mark.parametrize(("case", "bad", "path", "message"), PROBLEMS, ids=[p[0] for p in PROBLEMS])
def test_each_problem_is_reported_with_its_path(case: str, bad: dict, path: str, message: str) -> None:
    problems = validate_flow(bad, KNOWN)
    assert any(p["path"] == path and message in p["message"] for p in problems), problems


def test_a_flow_that_is_not_a_map_is_one_problem() -> None:
    assert validate_flow(["x"], KNOWN) == [{"path": "", "message": "a flow must be a map"}]


def test_every_problem_is_reported_at_once() -> None:
    bad = flow(name=..., initial="nowhere", states__docs__on__submit="chek", states__bank__external={})
    assert {"name", "initial", "states.docs.on.submit", "states.bank.external.url"} <= set(paths(
        validate_flow(bad, KNOWN)))


def test_an_unreachable_state_is_not_also_reported_as_a_dead_end() -> None:
    bad = flow(states__lost={"on": {"x": "lost"}})
    assert [p for p in validate_flow(bad, KNOWN) if p["path"] == "states.lost"] == [
        {"path": "states.lost", "message": "unreachable from the initial state"}]


def _self(name: str) -> dict:
    return {"name": name, "initial": "a", "states": {
        "a": {"subflow": name, "on": {"end": "end"}}, "end": {"final": True}}}


def _calls(name: str, child: str) -> dict:
    return {"name": name, "initial": "a", "states": {
        "a": {"subflow": child, "on": {"end": "end"}}, "end": {"final": True}}}


RECURSION = [
    ("itself", _self("a"), {}, "a -> a"),
    ("directly", _calls("a", "b"), {"b": _calls("b", "a")}, "a -> b -> a"),
    ("transitively", _calls("a", "b"), {"b": _calls("b", "c"), "c": _calls("c", "a")}, "a -> b -> c -> a"),
    ("below it", _calls("a", "b"), {"b": _calls("b", "c"), "c": _calls("c", "b")}, "b -> c -> b"),
    ("its old self", _calls("a", "b"), {"a": _calls("a", "x"), "b": _calls("b", "a")}, "a -> b -> a"),
]


@pytest.mark.parametrize(("case", "bad", "known", "cycle"), RECURSION, ids=[r[0] for r in RECURSION])
def test_recursive_subflows_are_problems(case: str, bad: dict, known: dict, cycle: str) -> None:
    problems = validate_flow(bad, known)
    assert problems == [{"path": "states.a.subflow", "message": f"recursive subflows: {cycle}"}]


def test_the_new_version_of_a_flow_replaces_the_known_one_in_the_recursion_check() -> None:
    assert validate_flow(_calls("a", "b"), {"a": _calls("a", "b"), "b": KYC | {"name": "b"}}) == []


WEIRD = [None, 0, True, 1.5, "", "x", [], [1, None], {}, {"a": None}, {1: 2}, {"url": 3}]


@pytest.mark.parametrize("weird", WEIRD, ids=repr)
def test_wrong_types_anywhere_give_problems_never_exceptions(weird: object) -> None:
    targets = [("name",), ("initial",), ("states",), ("states", "docs"), ("states", "docs", "on"),
               ("states", "docs", "on", "submit"), ("states", "check", "subflow"),
               ("states", "bank", "external"), ("states", "personal", "hints"), ("states", "docs", "actions"),
               ("states", "done", "final")]
    for keys in targets:
        bad = copy.deepcopy(ONBOARDING)
        node = bad
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = weird
        problems = validate_flow(bad, {"kyc_check": weird} if weird else KNOWN)
        assert all(isinstance(p["path"], str) and isinstance(p["message"], str) for p in problems)
        json.dumps(problems)


def test_known_flows_that_are_not_maps_do_not_break_validation() -> None:
    assert paths(validate_flow(ONBOARDING, None)) == ["states.check.subflow"]  # type: ignore[arg-type]
    assert validate_flow(ONBOARDING, {"kyc_check": "junk", 5: {}}) == []


def test_action_types_can_be_narrowed_by_the_caller() -> None:
    assert "notify.manager" in FLOW_ACTION_TYPES and "record.set" not in FLOW_ACTION_TYPES
    assert paths(validate_flow(ONBOARDING, KNOWN, action_types=["webhook.send"])) == [
        "states.docs.actions.0.type"]


def test_check_flow_returns_a_copy_with_a_default_title() -> None:
    checked = check_flow(KYC, {})
    assert checked == {**KYC, "title": "kyc_check"} and checked["states"] is not KYC["states"]
    assert check_flow(ONBOARDING, KNOWN)["title"] == "Onboarding"


def test_check_flow_raises_with_every_problem() -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_flow(flow(name=..., states__docs__on__submit="chek"), KNOWN)
    assert paths(caught.value.details) == ["name", "states.docs.on.submit", "states.check"]
    assert "states.check: unreachable from the initial state" in caught.value.text


def test_unhandled_child_outcomes_are_warnings() -> None:
    assert flow_warnings(ONBOARDING, KNOWN) == [{"path": "states.check.on", "message":
        "child 'kyc_check' may return 'exit', which is not handled: the process would wait in this state"}]
    partial = flow(states__check__on={"approved": "done", "exit": "docs"})
    assert [w["message"].split(",")[0] for w in flow_warnings(partial, KNOWN)] == [
        "child 'kyc_check' may return 'rejected'"]
    assert flow_warnings(["junk"], KNOWN) == []


GRAPH = {"a": {"b"}, "b": {"c"}, "c": set(), "d": {"d"}}


def test_graph_helpers_are_small_pure_functions() -> None:
    assert reachable(GRAPH, "a") == {"a", "b", "c"}
    assert can_finish(GRAPH, ["c"]) == {"a", "b", "c"}
    assert subflow_cycle(GRAPH, "a") is None and subflow_cycle(GRAPH, "d") == ["d", "d"]
    assert transitions(ONBOARDING["states"])["docs"] == {"check", "personal", "bank"}
    assert transitions({"a": "junk", "b": {"on": {"x": "nowhere"}}}) == {"a": set(), "b": set()}
    assert final_states(KYC) == ["approved", "rejected"] and final_states(None) == []
