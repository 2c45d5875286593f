"""Process instances: activated on demand in a fixed pool of workers, passivated when idle.

A pykka actor is a thread, so a process is not an actor of its own: every command for a pid
goes to the same worker (a stable hash of the pid), whose mailbox serializes them in arrival
order, while different pids run on different workers in parallel. A worker keeps the
processes it served recently in memory (activated) and drops the least recently used beyond
its cap or idle longer than ``idle_s`` (passivated); every step is persisted before the reply,
so passivation and restarts lose nothing.
"""

from __future__ import annotations

import logging
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from actors.base import SafeActor, StatsRegistry
from actors.messages import RunJob
from actors.pipeline import Pipeline
from actors.rules import RunIds
from brokerflow.errors import BadRequest, BrokerflowError, NotFound
from workflow import machine
from workflow.context import mapping_context

log = logging.getLogger("brokerflow.processes")

CHANGING = frozenset({"START", "RESTORE", "EVENT", "ROLLBACK", "EXIT", "ABORT"})


@dataclass(frozen=True, slots=True)
class ProcessCommand:
    cmd: str
    pid: str
    name: Any
    input: Any
    reply: Future


class FlowCache:
    """Flow definitions by (name, version); a version never changes, so only 'latest' expires."""

    def __init__(self, flows_repo: Any) -> None:
        self.repo = flows_repo
        self.versions: dict[tuple[str, int], dict[str, Any]] = {}
        self.latest: dict[str, dict[str, Any]] = {}

    def __call__(self, name: str, version: int | None = None) -> dict[str, Any]:
        if version is None:
            flow = self.latest.get(name)
            if flow is None:
                flow = self._load(name, None)
                self.latest[name] = flow
            return flow
        key = (name, int(version))
        flow = self.versions.get(key)
        if flow is None:
            flow = self.versions[key] = self._load(name, version)
        return flow

    def _load(self, name: str, version: int | None) -> dict[str, Any]:
        try:
            flow = self.repo.get(name, version)
        except NotFound:
            flow = None
        if flow is None:
            raise NotFound(f"flow {name!r}" + (f" version {version}" if version else "") + " not found")
        return flow

    def changed(self, name: str) -> None:
        self.latest.pop(name, None)


class ProcessWorker(SafeActor):
    kind = "process"

    def __init__(self, index: int, stats: StatsRegistry, flows: FlowCache, repo: Any, pipeline: Pipeline,
                 run_ids: RunIds, now_ms: Callable[[], int], live_cap: int, idle_s: float) -> None:
        super().__init__(f"process-worker:{index}", stats)
        self.flows, self.repo, self.pipeline, self.run_ids = flows, repo, pipeline, run_ids
        self.now_ms, self.live_cap, self.idle_ms = now_ms, live_cap, int(idle_s * 1000)
        self.active: OrderedDict[str, tuple[dict[str, Any], int]] = OrderedDict()
        self.activations = self.passivations = 0
        self.handlers = {ProcessCommand: self.on_command}

    def on_command(self, message: ProcessCommand) -> None:
        try:
            self._apply(message)
        except BrokerflowError as exc:  # the caller's mistake (unknown event, ended process): answered
            if not message.reply.done():
                message.reply.set_exception(exc)

    def _apply(self, message: ProcessCommand) -> None:
        now = self.now_ms()
        state = None
        if message.cmd not in ("START", "RESTORE"):
            state = self._activate(message.pid)
        step = machine.apply_command(self.flows, state, message.cmd, message.name, message.input,
                                     message.pid, now)
        if message.cmd in CHANGING:
            if state is None:
                self.repo.create(step.state)
            else:
                self.repo.save(step.state)
        self.active[message.pid] = (step.state, now)
        self.active.move_to_end(message.pid)
        self._passivate(now)
        message.reply.set_result(step.body)
        if step.actions:
            self._run_actions(step.state, step.actions, now)

    def _activate(self, pid: str) -> dict[str, Any] | None:
        entry = self.active.get(pid)
        if entry is not None:
            return entry[0]
        state = self.repo.load(pid)
        if state is not None:
            self.activations += 1
        return state

    def _passivate(self, now: int) -> None:
        while len(self.active) > self.live_cap:
            self.active.popitem(last=False)
            self.passivations += 1
        while self.active:
            pid, (_, last_used) = next(iter(self.active.items()))
            if now - last_used <= self.idle_ms:
                break
            self.active.popitem(last=False)
            self.passivations += 1

    def _run_actions(self, state: dict[str, Any], entries: list[dict[str, Any]], now: int) -> None:
        data = state.get("input") or {}
        context = {**mapping_context("input", data), "_customer_id": data.get("customer_id"),
                   "_event_id": state.get("pid"), "brand": data.get("brand")}
        jobs = [RunJob(run_id=self.run_ids.next(), rule_id=None, rule_version=None, brand=data.get("brand"),
                       trigger=f"process:{entry['flow']}.{entry['state']}", event_id=str(state.get("pid")),
                       actions=tuple(entry["actions"]), context=context, started_ms=now, origin="process",
                       extra={"pid": state.get("pid")})
                for entry in entries if entry.get("actions")]
        if jobs:
            self.pipeline.dispatch(jobs)


class ProcessManager:
    """The front of the pool: picks the worker for a pid; the Services' process handler."""

    def __init__(self, workers: list[Any], flows: FlowCache) -> None:
        self.workers, self.flows = workers, flows

    def worker_for(self, pid: str) -> Any:
        return self.workers[zlib.crc32(pid.encode()) % len(self.workers)]

    def handle(self, cmd: str, params: dict[str, Any], _principal: Any) -> Future:
        reply: Future = Future()
        pid = params.get("pid")
        if cmd in ("START", "RESTORE"):
            pid = uuid.uuid4().hex
        if not isinstance(pid, str) or not pid:
            reply.set_exception(BadRequest("pid is required"))
            return reply
        self.worker_for(pid).tell(ProcessCommand(cmd, pid, params.get("name"), params.get("input"), reply))
        return reply


def start_process_pool(count: int, stats: StatsRegistry, flows: FlowCache, repo: Any, pipeline: Pipeline,
                       run_ids: RunIds, now_ms: Callable[[], int], live_cap: int,
                       idle_s: float) -> ProcessManager:
    per_worker = max(1, live_cap // max(1, count))
    workers = [ProcessWorker.start(index, stats, flows, repo, pipeline, run_ids, now_ms, per_worker, idle_s)
               for index in range(count)]
    return ProcessManager(workers, flows)
