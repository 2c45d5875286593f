"""The Workflow Machine (docs/workflow-machine.md) as pure functions over plain data.

Each command takes a ``ProcessState`` dict (``workflow.machine.state``) and returns a ``Step``:
the new state (a copy that shares the unchanged history steps; the argument is never mutated),
the reply ``body`` and the state ``actions`` entered on the way,
``[{"flow", "state", "actions": [...]}]``, for the caller to run.
No clock, ids or I/O here: ``now_ms`` and the new ``pid`` come in, flows come from a lookup.

Semantics and the choices behind them:
- A process rests in a non-final state and records one history step there per command that
  moves it. Subflow states and a child's final states are passed through (not recorded); the
  top flow's final state is recorded with status ``done`` and ends the process.
- Entering a ``subflow`` state pushes the child (new ``flowId``) and enters its initial state.
  A child reaching final state S is popped and the parent gets event S; ``EXIT`` in a child pops
  it and the parent gets ``exit``. If the parent state has no ``on`` for it, the process rests
  in the parent's subflow state (reply SUCCESS; EVENT can still move it on).
- ``actions`` are reported for every state entered, in order: the subflow state, the child's
  states, a child's final state, the parent's target. ROLLBACK enters nothing: no actions.
- Input: every command's input map is merged (shallow) into ``state["input"]``, which SUCCESS
  shows as ``output``; RESTORE's ``state`` key is a control key and not merged. ROLLBACK
  recomputes the input from the steps it keeps. ``returnUrl`` (START/RESTORE) must be a string.
- Breadcrumb ``title`` = the state's title, else its name; ``value`` = ``input["value"]`` (a
  string or a number, as a string) of the command that led there, else the event, else null.
- Replies: SUCCESS carries every step with its status (exactly one ``active`` while the process
  runs); EXTERNAL_ENTER when a command arrives at an external state (also by ROLLBACK);
  END / EXTERNAL_RETURN (``returnUrl``) when the top flow ends by a final state or EXIT; ABORT
  always answers END. HISTORY and AVAILABLE_EVENTS answer SUCCESS (END once ended) plus
  ``step`` (breadcrumb + ``input``, ``event``, ``at``) / ``events``; on an ended process
  ``events`` is ``[]``; ``exit`` is listed only if ``on`` has it (EXIT is a command, not an event).
- Versions: START pins the current version of the flow and of every flow it may start
  (transitively; a missing one fails START with NotFound); later starts use the pinned version.
- A flow that loops through states without resting (e.g. a child whose initial state is final
  feeding back into the same subflow state) fails the command with ``ValidationFailed``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from brokerflow.errors import (
    BadRequest,
    EventNotAvailable,
    NotFound,
    ProcessEnded,
    UnknownCommand,
    ValidationFailed,
)
from brokerflow.workflow.machine import state as ms
from brokerflow.workflow.machine.state import FlowLookup

COMMANDS = ("START", "RESTORE", "EVENT", "ROLLBACK", "EXIT", "ABORT", "HISTORY", "AVAILABLE_EVENTS")
EXIT_EVENT = "exit"
_STRICT_JSON = json.JSONEncoder(allow_nan=False)  # one encoder: json.dumps(allow_nan=...) builds one per call
INPUT_DEPTH_MAX = 32  # levels of maps and lists in a command's input
MAX_HOPS = 64  # states entered by one command before it is declared a loop


class Step(NamedTuple):
    """What a command did: the new process state, the reply body, the state actions to run."""

    state: dict[str, Any]
    body: dict[str, Any]
    actions: list[dict[str, Any]]


@dataclass
class _Run:
    """One command in progress: the working copy of the state and what it collected."""

    flows: FlowLookup
    state: dict[str, Any]
    input: dict[str, Any]
    now_ms: int
    actions: list[dict[str, Any]] = field(default_factory=list)
    hops: int = 0

    def step(self, body: dict[str, Any]) -> Step:
        self.state["updated_at"] = self.now_ms
        return Step(self.state, body, self.actions)


def as_input(data: Any) -> dict[str, Any]:
    """A command's input as a fresh dict: None is ``{}``; anything but a JSON map is BadRequest."""
    if data is None:
        return {}
    if not isinstance(data, Mapping) or not all(isinstance(k, str) for k in data):
        raise BadRequest("input must be a map with string keys")
    if _too_deep(data, INPUT_DEPTH_MAX):
        raise BadRequest(f"input must nest at most {INPUT_DEPTH_MAX} maps and lists deep")
    try:
        return json.loads(_STRICT_JSON.encode(data))
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"input must be JSON data: {str(exc)[:200]}") from None


def _too_deep(data: Any, limit: int) -> bool:
    """Whether maps and lists nest past ``limit``: the encoder would recurse until RecursionError.

    Iterative, so the check itself cannot recurse; it stops at the first level past the limit.
    """
    level: list[Any] = [data]
    for _ in range(limit):
        level = [child for item in level
                 for child in (item.values() if isinstance(item, Mapping) else item)
                 if isinstance(child, (Mapping, list, tuple))]
        if not level:
            return False
    return True


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{what} is required (a non-empty string)")
    return value


def _live(state: dict[str, Any]) -> dict[str, Any]:
    if state.get("status") != "active":
        raise ProcessEnded(f"process {state.get('pid')!r} has ended")
    return ms.working_copy(state)


def _pin(flows: FlowLookup, state: dict[str, Any], name: str) -> dict[str, Any]:
    """Look ``name`` up at its current version and pin it and everything it may start."""
    flow = flows(name, None)
    state["flows"][name] = flow.get("version")
    for definition in flow.get("states", {}).values():
        child = definition.get("subflow")
        if isinstance(child, str) and child not in state["flows"]:
            _pin(flows, state, child)
    return flow


def _enter(run: _Run, target: str, event: str | None) -> dict[str, Any]:
    run.hops += 1
    if run.hops > MAX_HOPS:
        path = f"states.{target}"
        raise ValidationFailed(f"flow {ms.top(run.state)['flow']!r} loops without resting at {target!r}",
                               details=[{"path": path, "message": "entered again and again in one command"}])
    frame = ms.top(run.state)
    frame["state"] = target
    definition = ms.state_def(run.flows, frame)
    if definition.get("actions"):
        run.actions.append({"flow": frame["flow"], "state": target,
                            "actions": ms.clone_json(definition["actions"])})
    if definition.get("subflow"):
        return _start_child(run, definition["subflow"], event)
    if definition.get("final") is not True:
        ms.record_step(run.state, definition, event, run.input, run.now_ms)
        return ms.resting_body(run.flows, run.state)
    if len(run.state["stack"]) > 1:
        return _return_to_parent(run, target)
    ms.record_step(run.state, definition, event, run.input, run.now_ms, status="done")
    ms.end_process(run.state, run.now_ms, "final")
    return ms.finished_body(run.state)


def _start_child(run: _Run, name: str, event: str | None) -> dict[str, Any]:
    version = run.state["flows"].get(name)
    flow = run.flows(name, version)
    frame = ms.push_frame(run.state, name, version, flow["initial"])
    return _enter(run, frame["state"], event)


def _return_to_parent(run: _Run, outcome: str) -> dict[str, Any]:
    """Pop the child; the parent's subflow state receives ``outcome`` as an event."""
    run.state["stack"].pop()
    definition = ms.state_def(run.flows, ms.top(run.state))
    target = (definition.get("on") or {}).get(outcome)
    if target is None:
        ms.record_step(run.state, definition, outcome, run.input, run.now_ms)
        return ms.success_body(run.state, definition)
    return _enter(run, target, outcome)


def _begin(flows: FlowLookup, name: str, data: dict[str, Any], pid: Any, now_ms: int) -> _Run:
    _text(name, "name (the flow)")
    _required(pid, "pid")
    url = data.get("returnUrl")
    if "returnUrl" in data and (not isinstance(url, str) or not url):
        raise ValidationFailed("returnUrl must be a non-empty string",
                               details=[{"path": "input.returnUrl", "message": "must be a non-empty string"}])
    state = ms.new_state(pid, now_ms)
    if url:
        state["returnUrl"] = url
    flow = _pin(flows, state, name)
    ms.push_frame(state, name, state["flows"][name], flow["initial"])
    state["input"].update(data)
    return _Run(flows, state, data, now_ms)


def start(flows: FlowLookup, name: str, input: Any, pid: Any, now_ms: int) -> Step:
    """START: a new process in flow ``name`` at its initial state."""
    return _start(flows, name, as_input(input), pid, now_ms)


def _start(flows: FlowLookup, name: str, data: dict[str, Any], pid: Any, now_ms: int) -> Step:
    run = _begin(flows, name, data, pid, now_ms)
    return run.step(_enter(run, ms.top(run.state)["state"], None))


def restore(flows: FlowLookup, name: str, input: Any, pid: Any, now_ms: int) -> Step:
    """RESTORE: like START, but entering ``input["state"]`` instead of the initial state."""
    return _restore(flows, name, as_input(input), pid, now_ms)


def _restore(flows: FlowLookup, name: str, data: dict[str, Any], pid: Any, now_ms: int) -> Step:
    target = data.pop("state", None)
    if not isinstance(target, str) or not target:
        raise ValidationFailed("input.state is required", details=[
            {"path": "input.state", "message": "is required: the state to restore to"}])
    run = _begin(flows, name, data, pid, now_ms)
    if target not in ms.flow_of(flows, ms.top(run.state)).get("states", {}):
        raise NotFound(f"state {target!r} is not in flow {name!r}")
    return run.step(_enter(run, target, None))


def event(flows: FlowLookup, state: dict[str, Any], event_name: str, input: Any, now_ms: int) -> Step:
    """EVENT: take the current state's transition for ``event_name``."""
    _text(event_name, "name (the event)")
    return _event(flows, state, event_name, as_input(input), now_ms)


def _event(flows: FlowLookup, state: dict[str, Any], event_name: str, data: dict[str, Any], now_ms: int) -> Step:
    run = _Run(flows, _live(state), data, now_ms)
    frame = ms.top(run.state)
    target = (ms.state_def(flows, frame).get("on") or {}).get(event_name)
    if not isinstance(target, str):
        raise EventNotAvailable(f"event {event_name!r} is not available in state {frame['state']!r} "
                                f"of flow {frame['flow']!r}")
    run.state["input"].update(data)
    return run.step(_enter(run, target, event_name))


def rollback(flows: FlowLookup, state: dict[str, Any], step_id: str, now_ms: int) -> Step:
    """ROLLBACK: back to history step ``step_id``; the steps after it become ``rolled_back``."""
    _text(step_id, "name (the history step)")
    run = _Run(flows, _live(state), {}, now_ms)
    ms.rewind(run.state, step_id)
    return run.step(ms.resting_body(flows, run.state))


def exit(flows: FlowLookup, state: dict[str, Any], now_ms: int) -> Step:
    """EXIT: leave the current flow; a child returns ``exit`` to its parent, the top flow ends."""
    run = _Run(flows, _live(state), {}, now_ms)
    if len(run.state["stack"]) > 1:
        return run.step(_return_to_parent(run, EXIT_EVENT))
    ms.end_process(run.state, now_ms, "exit")
    return run.step(ms.finished_body(run.state))


def abort(state: dict[str, Any], now_ms: int) -> Step:
    """ABORT: end every flow of the process at once; always END."""
    ended = _live(state)
    ms.end_process(ended, now_ms, "abort")
    return Step(ended, ms.end_body(ended), [])


def _query_body(flows: FlowLookup, state: dict[str, Any]) -> dict[str, Any]:
    if state.get("status") != "active":
        return ms.end_body(state)
    return ms.success_body(state, ms.state_def(flows, ms.top(state)))


def history_step(state: dict[str, Any], step_id: str, flows: FlowLookup | None = None) -> Step:
    """HISTORY: ``body.step`` is the breadcrumb with the input it received.

    With ``flows`` the body is the full SUCCESS reply (END once ended) plus ``step``; without,
    it is ``{"pid", "result", "step"}``. The state is returned unchanged.
    """
    _text(step_id, "name (the history step)")
    _, step = ms.find_step(state, step_id)
    if flows is None:
        body = {"pid": state["pid"], "result": "SUCCESS" if state["status"] == "active" else "END"}
    else:
        body = _query_body(flows, state)
    return Step(state, {**body, "step": ms.step_detail(step)}, [])


def available_events(flows: FlowLookup, state: dict[str, Any]) -> Step:
    """AVAILABLE_EVENTS: ``body.events``, the sorted event names of the current state."""
    body = _query_body(flows, state)
    events: list[str] = []
    if state.get("status") == "active":
        events = sorted((ms.state_def(flows, ms.top(state)).get("on") or {}).keys())
    return Step(state, {**body, "events": events}, [])


def _required(value: Any, what: str) -> Any:
    if value is None or value == "" or isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadRequest(f"{what} is required")
    return value


_BY_STATE = {
    "EVENT": lambda f, s, n, i, t: _event(f, s, _text(_required(n, "name"), "name (the event)"), i, t),
    "ROLLBACK": lambda f, s, n, i, t: rollback(f, s, _required(n, "name"), t),
    "EXIT": lambda f, s, n, i, t: exit(f, s, t),
    "ABORT": lambda f, s, n, i, t: abort(s, t),
    "HISTORY": lambda f, s, n, i, t: history_step(s, _required(n, "name"), f),
    "AVAILABLE_EVENTS": lambda f, s, n, i, t: available_events(f, s),
}


def apply_command(flows: FlowLookup, state: dict[str, Any] | None, cmd: str, name: Any, input: Any,
                  pid: Any, now_ms: int) -> Step:
    """One entry point for the eight commands; ``state`` is None only for START/RESTORE."""
    if cmd not in COMMANDS:
        raise UnknownCommand(f"unknown workflow command {cmd!r}")
    data = as_input(input)  # once: the commands below take it as checked
    _required(pid, "pid")
    if cmd in ("START", "RESTORE"):
        return (_start if cmd == "START" else _restore)(flows, _required(name, "name"), data, pid, now_ms)
    if state is None:
        raise NotFound(f"process {pid!r} not found")
    return _BY_STATE[cmd](flows, state, name, data, now_ms)
