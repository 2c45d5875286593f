"""Flow definitions of the Workflow Machine: plain data, checked once when they are saved.

``validate_flow`` returns every problem as ``{"path", "message"}`` and never raises, whatever the
types; ``check_flow`` raises ``ValidationFailed`` with all of them. The machine trusts a checked flow.
Choices: unknown keys inside a state are problems (``"fianl"`` would make a silent dead end),
unknown top-level keys (``version``, storage metadata) are ignored; ``final``, ``subflow`` and
``external`` exclude each other; a subflow state needs an ``on``, and the child outcomes it leaves
unhandled (final-state names and ``exit``) are warnings (``flow_warnings``): the process then
waits in the subflow state. Recursion is found through ``known_flows`` (the flow under check
replacing its stored version). ``actions`` must be catalog actions run by an actor
(not the inline hook/sink ones) with their required parameters, unless ``action_types`` says.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Collection, Mapping
from typing import Any

from brokerflow.errors import ValidationFailed
from brokerflow.workflow.catalog import ACTIONS
from brokerflow.workflow.policies.webhook_delivery import param_problems as delivery_param_problems

EXIT_EVENT = "exit"
STATE_KEYS = ("title", "on", "boStepCode", "hints", "actions", "subflow", "external", "final")
FLOW_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}")
FLOW_ACTION_TYPES = tuple(sorted(t for t, spec in ACTIONS.items() if spec.executor != "inline"))
_PARAM_TYPES = {"string": str, "integer": int, "number": (int, float), "map": Mapping}

Problems = list[dict[str, str]]


def _add(problems: Problems, path: str, message: str) -> None:
    problems.append({"path": path, "message": message})


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def states_of(flow: Any) -> Mapping[str, Any]:
    """The ``states`` map of a flow, or an empty map when the flow is not shaped like one."""
    states = flow.get("states") if isinstance(flow, Mapping) else None
    return states if isinstance(states, Mapping) else {}


def final_states(flow: Any) -> list[str]:
    """Names of the final states, i.e. the events a parent receives when this flow ends."""
    return [n for n, s in states_of(flow).items() if isinstance(s, Mapping) and s.get("final") is True]


def transitions(states: Mapping[str, Any]) -> dict[str, set[str]]:
    """The graph: state -> the existing states its ``on`` leads to (bad entries skipped)."""
    graph: dict[str, set[str]] = {}
    for name, state in states.items():
        on = state.get("on") if isinstance(state, Mapping) else None
        targets = on.values() if isinstance(on, Mapping) else ()
        graph[name] = {t for t in targets if isinstance(t, str) and t in states}
    return graph


def reachable(graph: Mapping[str, Collection[str]], *starts: str) -> set[str]:
    """Every node reachable from one of ``starts`` (the starts included)."""
    seen, todo = set(starts), list(starts)
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def can_finish(graph: Mapping[str, Collection[str]], finals: Collection[str]) -> set[str]:
    """Every node with a path to one of ``finals`` (the finals included)."""
    reverse = {node: {src for src, targets in graph.items() if node in targets} for node in graph}
    return reachable(reverse, *finals)


def subflow_graph(flow: Mapping[str, Any], known_flows: Mapping[str, Any]) -> dict[str, set[str]]:
    """Flow name -> names of the flows its states start, over ``known_flows`` plus ``flow``."""
    flows = dict(known_flows)
    if isinstance(flow.get("name"), str):
        flows[flow["name"]] = flow
    return {
        name: {s["subflow"] for s in states_of(f).values()
               if isinstance(s, Mapping) and isinstance(s.get("subflow"), str)}
        for name, f in flows.items() if isinstance(name, str)
    }


def _path(graph: Mapping[str, Collection[str]], start: str, goal: str) -> list[str] | None:
    """A shortest path ``[start, ..., goal]``, or None."""
    queue, seen = [[start]], {start}
    for path in queue:
        if path[-1] == goal:
            return path
        for nxt in sorted(graph.get(path[-1], ())):
            if nxt not in seen:
                seen.add(nxt)
                queue.append([*path, nxt])
    return None


def subflow_cycle(graph: Mapping[str, Collection[str]], start: str) -> list[str] | None:
    """A cycle of subflow references reachable from ``start``, as ``[a, b, ..., a]``."""
    for node in sorted(reachable(graph, start)):
        for nxt in sorted(graph.get(node, ())):
            back = _path(graph, nxt, node)
            if back is not None:
                return [node, *back]
    return None


def _check_header(flow: Mapping[str, Any], problems: Problems) -> None:
    name = flow.get("name")
    if not isinstance(name, str) or not FLOW_NAME.fullmatch(name):
        _add(problems, "name", "is required" if name is None else "must be 1-100 letters, digits, _ . -")
    if "title" in flow and not isinstance(flow["title"], str):
        _add(problems, "title", "must be a string")
    initial, states = flow.get("initial"), flow.get("states")
    if not isinstance(initial, str) or isinstance(states, Mapping) and initial not in states:
        _add(problems, "initial", "is required" if initial is None else f"names no state: {initial!r}")
    if not isinstance(states, Mapping) or not states:
        _add(problems, "states", "must be a non-empty map of state name to state")


def _check_on(on: Any, states: Mapping[str, Any], path: str, problems: Problems) -> None:
    if not isinstance(on, Mapping):
        _add(problems, path, "must be a map of event name to target state")
        return
    for event, target in on.items():
        if not _is_text(event):
            _add(problems, f"{path}.{event}", "event names must be non-empty strings")
        elif not isinstance(target, str):
            _add(problems, f"{path}.{event}", "the target must be a state name")
        elif target not in states:
            _add(problems, f"{path}.{event}", f"unknown target state {target!r}")


def _shaped(value: Any, **kinds: type) -> bool:
    return isinstance(value, Mapping) and all(isinstance(value.get(k), t) for k, t in kinds.items())


def _check_hints(hints: Any, path: str, problems: Problems) -> None:
    if not isinstance(hints, list):
        _add(problems, path, "must be a list of {elementCode, hintTexts}")
        return
    for i, hint in enumerate(hints):
        texts = hint.get("hintTexts", []) if isinstance(hint, Mapping) else None
        if not _shaped(hint, elementCode=str) or not isinstance(texts, list):
            _add(problems, f"{path}.{i}", "must be {elementCode: str, hintTexts: [...]}")
            continue
        for j, text in enumerate(texts):
            if not _shaped(text, text=str, hintTextType=str):
                _add(problems, f"{path}.{i}.hintTexts.{j}", "must be {text: str, hintTextType: str}")


def _check_params(kind: str, params: Mapping[str, Any], path: str, problems: Problems) -> None:
    spec = ACTIONS.get(kind)
    for param in spec.params if spec else ():
        value = params.get(param.name)
        wanted = _PARAM_TYPES.get(param.type, object)
        if value is None:
            if param.required:
                _add(problems, f"{path}.{param.name}", "is required")
        elif not isinstance(value, wanted) or isinstance(value, bool) and wanted is not object:
            _add(problems, f"{path}.{param.name}", f"must be {param.type}")
    if kind == "webhook.send":  # retries, backoff_s, secret's form (the engine checks the secret's name)
        for name, problem in delivery_param_problems(params):
            _add(problems, f"{path}.{name}", problem)


def _check_actions(actions: Any, path: str, allowed: Collection[str], problems: Problems) -> None:
    if not isinstance(actions, list):
        _add(problems, path, "must be a list of {type, params}")
        return
    for i, action in enumerate(actions):
        here = f"{path}.{i}"
        if not isinstance(action, Mapping):
            _add(problems, here, "must be a map {type, params}")
            continue
        kind, params = action.get("type"), action.get("params", {})
        if not isinstance(kind, str) or kind not in allowed:
            _add(problems, f"{here}.type", f"must be one of {', '.join(sorted(allowed))}")
        if not isinstance(params, Mapping):
            _add(problems, f"{here}.params", "must be a map")
        elif isinstance(kind, str):
            _check_params(kind, params, f"{here}.params", problems)


def _check_kind(state: Mapping[str, Any], path: str, problems: Problems) -> None:
    final, subflow, external = state.get("final", False), state.get("subflow"), state.get("external")
    if not isinstance(final, bool):
        _add(problems, f"{path}.final", "must be true or false")
    if sum((final is True, subflow is not None, external is not None)) > 1:
        _add(problems, path, "final, subflow and external exclude each other")
    if final is True and state.get("on"):
        _add(problems, f"{path}.on", "a final state has no outgoing transitions")
    if subflow is not None and not _is_text(subflow):
        _add(problems, f"{path}.subflow", "must be a flow name")
    elif subflow is not None and not state.get("on"):
        _add(problems, f"{path}.on", "a subflow state must handle the child's outcomes in 'on'")
    if external is not None and not (isinstance(external, Mapping) and _is_text(external.get("url"))):
        _add(problems, f"{path}.external.url", "is required: the url the caller is sent to")


def _check_state(name: Any, state: Any, states: Mapping[str, Any], allowed: Collection[str],
                 problems: Problems) -> None:
    path = f"states.{name}"
    if not _is_text(name):
        _add(problems, path, "state names must be non-empty strings")
        return
    if not isinstance(state, Mapping):
        _add(problems, path, "a state must be a map")
        return
    for key in state:
        if key not in STATE_KEYS:
            _add(problems, f"{path}.{key}", "unknown key")
    for key in ("title", "boStepCode"):
        if key in state and not isinstance(state[key], str):
            _add(problems, f"{path}.{key}", "must be a string")
    if "on" in state:
        _check_on(state["on"], states, f"{path}.on", problems)
    _check_kind(state, path, problems)
    if "hints" in state:
        _check_hints(state["hints"], f"{path}.hints", problems)
    if "actions" in state:
        _check_actions(state["actions"], f"{path}.actions", allowed, problems)


def _check_graph(flow: Mapping[str, Any], states: Mapping[str, Any], problems: Problems) -> None:
    graph = transitions(states)
    initial = flow.get("initial")
    seen = reachable(graph, initial) if isinstance(initial, str) and initial in states else set(states)
    finals = final_states(flow)
    finishing = can_finish(graph, finals) if finals else set(states)
    for name in states:
        if name not in seen:
            _add(problems, f"states.{name}", "unreachable from the initial state")
        elif name not in finishing:
            _add(problems, f"states.{name}", "no path to a final state")
    if not finals:
        _add(problems, "states", "no final state: the flow could never end")


def _check_subflows(flow: Mapping[str, Any], known_flows: Mapping[str, Any], problems: Problems) -> None:
    graph, own = subflow_graph(flow, known_flows), flow.get("name")
    for name, state in states_of(flow).items():
        child = state.get("subflow") if isinstance(state, Mapping) else None
        if not _is_text(child):
            continue
        if child != own and child not in known_flows:
            _add(problems, f"states.{name}.subflow", f"unknown flow {child!r}")
        elif (cycle := subflow_cycle(graph, child)) is not None:
            _add(problems, f"states.{name}.subflow", "recursive subflows: " + " -> ".join(cycle))


def validate_flow(flow: Any, known_flows: Mapping[str, Any],
                  action_types: Collection[str] | None = None) -> Problems:
    """Every problem of ``flow`` as ``{"path", "message"}``; an empty list means valid."""
    if not isinstance(flow, Mapping):
        return [{"path": "", "message": "a flow must be a map"}]
    problems: Problems = []
    _check_header(flow, problems)
    states = states_of(flow)
    allowed = FLOW_ACTION_TYPES if action_types is None else tuple(action_types)
    for name, state in states.items():
        _check_state(name, state, states, allowed, problems)
    if states:
        _check_graph(flow, states, problems)
    _check_subflows(flow, known_flows if isinstance(known_flows, Mapping) else {}, problems)
    return problems


def flow_warnings(flow: Any, known_flows: Mapping[str, Any]) -> Problems:
    """Child outcomes (final-state names and ``exit``) a subflow state leaves unhandled."""
    warnings: Problems = []
    for name, state in states_of(flow).items():
        child_name = state.get("subflow") if isinstance(state, Mapping) else None
        if not isinstance(child_name, str):
            continue
        child = flow if child_name == flow.get("name") else known_flows.get(child_name)
        on = state.get("on") if isinstance(state.get("on"), Mapping) else {}
        for outcome in [*final_states(child), EXIT_EVENT]:
            if outcome not in on:
                _add(warnings, f"states.{name}.on", f"child {child_name!r} may return {outcome!r}, "
                     "which is not handled: the process would wait in this state")
    return warnings


def check_flow(flow: Any, known_flows: Mapping[str, Any],
               action_types: Collection[str] | None = None) -> dict[str, Any]:
    """The flow (a deep copy, ``title`` defaulting to ``name``), or ``ValidationFailed`` with all problems."""
    problems = validate_flow(flow, known_flows, action_types)
    if problems:
        text = "; ".join(f"{p['path'] or '(flow)'}: {p['message']}" for p in problems)
        raise ValidationFailed(f"invalid flow: {text}", details=problems)
    checked = copy.deepcopy(dict(flow))
    checked.setdefault("title", checked["name"])
    return checked
