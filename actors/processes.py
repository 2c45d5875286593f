"""Process instances: activated on demand in a fixed pool of workers, passivated when idle.

A pykka actor is a thread, so a process is not an actor of its own: every command for a pid
goes to the same worker (a stable hash of the pid), whose shard lock serializes them in arrival
order, while different pids run on different workers. Ten thousand processes are ten thousand
rows and at most ``live_cap`` dicts in memory, never ten thousand threads.

Two ways in: a command told to the worker's mailbox (HTTP gateway, in-process callers) runs on
the worker thread and saves through the group commit; a command of the management API's loop
runs on that loop's thread within its ``Burst`` (``ProcessManager.handle(..., burst=)``), and
the burst's states are committed in one statement and transaction before any is answered. Under
one GIL the two thread hand-offs per command cost more than the machine; the worker threads stay
for the other callers, the sweeps and the statistics.

A worker keeps the processes it served recently in memory (activated) and drops the least
recently used beyond its share of the cap, and those idle longer than ``idle_s`` (passivated:
the pool's sweeper sends ``Sweep`` so idle ones go even when no command comes). Every step is
persisted before the reply, so passivation and restarts lose nothing; an ended process is not
kept at all. A command refused by the machine (a ``BrokerflowError``: unknown pid, unavailable
event, ended process, bad input) is an answer, not a failure of the worker.

Ownership (``serve --shards``/``--cluster``): ``ProcessManager.handle`` refuses a pid another
engine owns, and the shard asks again under its lock, where the command is applied: a command
that waited in a worker's mailbox (or for a burst) while the pid's partition was given away is
refused with the same ``Conflict`` instead of saving over what the new owner saved.

Brand scope (``workflow.process_scope``): a command of a brand-scoped caller carries a
``guard`` (``api.access.ProcessScope``) that the worker asks under the pid's lock, before it
applies the command and on the state it leaves, so a refused command changes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, Protocol

import pykka

from brokerflow.actors.base import SafeActor, StatsRegistry
from brokerflow.actors.messages import RunJob
from brokerflow.actors.pipeline import Pipeline
from brokerflow.actors.rules import RunIds
from brokerflow.errors import BadRequest, BrokerflowError, Conflict, Internal, NotFound
from brokerflow.workflow.machine import commands as machine
from brokerflow.workflow.machine.scope import (
    CHANGING,
    CREATING,
    ProcessGuard,
    action_context,
    guard_after,
    guard_before,
    settle_brand,
)
from brokerflow.workflow.machine.state import NO_TEXTS, StepTexts, state_json

log = logging.getLogger("brokerflow.processes")

MAX_SWEEP_INTERVAL_S = 5.0
KIND = "process"  # the stats kind of the workers


@dataclass(frozen=True, slots=True)
class ProcessCommand:
    """One of the eight Workflow Machine commands for one pid; the body goes to ``reply``.

    ``guard``: the caller's brand scope, ``None`` for an unscoped caller.
    """

    cmd: str
    pid: str
    name: Any
    input: Any
    reply: Future
    guard: ProcessGuard | None = None


@dataclass(frozen=True, slots=True)
class Sweep:
    """Passivate the processes idle since before ``now_ms - idle``; not counted as processed."""

    now_ms: int
    size: ClassVar[int] = 0


def not_owned() -> Conflict:
    """The answer for a pid this engine does not own (any more): the caller tries again at its owner."""
    return Conflict("this process lives in another shard (serve --shards) or cluster member "
                    "(serve --cluster, or its partition is changing hands): try again; "
                    "the management API and the HTTP gateway route it to its owner")


class FlowSource(Protocol):
    """``store.flows`` of the storage package, as the flow cache reads it."""

    def get(self, name: str, version: int | None = None) -> dict: ...


class ProcessStates(Protocol):
    """``store.processes`` of the storage package: where a process's state is kept."""

    def create(self, state: dict) -> str | int: ...

    def load(self, pid: str) -> dict | None: ...

    def save(self, state: dict, text: str | None = None) -> None: ...

    def save_many(self, states: Sequence[tuple[dict, str | None]]) -> dict[str, Exception]: ...


class FlowCache:
    """Flow definitions by (name, version); a version never changes, so only 'latest' expires.

    ``changed`` may run (API thread) while a worker is loading the latest version: the
    generation counter keeps that worker from caching what it read before the change.
    """

    def __init__(self, flows_repo: FlowSource) -> None:
        self.repo = flows_repo
        self.versions: dict[tuple[str, int], dict[str, Any]] = {}
        self.latest: dict[str, dict[str, Any]] = {}
        self.generation: dict[str, int] = {}

    def __call__(self, name: str, version: int | None = None) -> dict[str, Any]:
        if version is None:
            flow = self.latest.get(name)
            if flow is None:
                seen = self.generation.get(name, 0)
                flow = self._load(name, None)
                if self.generation.get(name, 0) == seen:
                    self.latest[name] = flow
            return flow
        key = (name, int(version))
        flow = self.versions.get(key)
        if flow is None:
            flow = self.versions[key] = self._load(name, version)
        return flow

    def _load(self, name: str, version: int | None) -> dict[str, Any]:
        try:
            return self.repo.get(name, version)
        except NotFound:
            raise NotFound(f"flow {name!r}" + (f" version {version}" if version else "") + " not found",
                           details=[{"path": "name", "message": "no such flow"}]) from None

    def changed(self, name: str) -> None:
        self.generation[name] = self.generation.get(name, 0) + 1
        self.latest.pop(name, None)


class Deferred(NamedTuple):
    """A command applied in a burst, waiting for the burst's commit: then its answer and actions."""

    shard: ProcessShard
    message: ProcessCommand
    step: machine.Step | None
    save: tuple[dict[str, Any], str] | None  # (state, its JSON) for a changing command
    error: Exception | None  # a refused or failed command's answer
    now: int


@dataclass(slots=True)
class BurstBatch:
    """The process commands of one burst of the management API and the shards locked for it."""

    items: list[Deferred] = field(default_factory=list)
    held: list[ProcessShard] = field(default_factory=list)


class ProcessShard:
    """The processes of one worker: their live states, counters and the code that applies a command.

    Its actor thread applies the commands told to it; the management API's loop thread applies
    its own commands here directly (``apply_in_burst``), which saves the two thread hand-offs per
    command (API -> worker -> API) that cost more than the machine itself under one GIL.
    ``lock`` serializes the two, so a pid's commands still apply one at a time, in arrival
    order for each front door. The loop holds the lock until its burst is committed, so the
    actor thread never builds on a state that is not stored yet.
    """

    def __init__(self, index: int, stats: StatsRegistry, flows: FlowCache, repo: ProcessStates, pipeline: Pipeline,
                 run_ids: RunIds, now_ms: Callable[[], int], live_cap: int, idle_s: float) -> None:
        self.name = f"process-worker:{index}"
        self.cell = stats.cell(self.name, KIND)
        self.flows, self.repo, self.pipeline, self.run_ids = flows, repo, pipeline, run_ids
        self.now_ms, self.live_cap, self.idle_ms = now_ms, max(1, live_cap), int(idle_s * 1000)
        self.active: OrderedDict[str, tuple[dict[str, Any], int, StepTexts]] = OrderedDict()
        self.activations = self.passivations = 0
        self.lock = threading.Lock()
        # Set with ``ProcessManager.owns_pid``: asked under ``lock`` before a command is applied.
        self.owns_pid: Callable[[str], bool] | None = None
        self._show()

    def command(self, message: ProcessCommand) -> None:
        """Apply one command (hold ``lock``); a refused one is answered, an unexpected error raised."""
        try:
            self._apply(message)
        except BrokerflowError as exc:  # the caller's mistake (unknown event, ended process): answered
            self._show()
            if not message.reply.done():
                message.reply.set_exception(exc)
        except Exception:
            self._show()  # the caller counts and answers the unexpected error
            raise

    def apply_in_burst(self, message: ProcessCommand, batch: BurstBatch) -> None:
        """Apply ``message`` on the calling thread; its save, reply and actions wait for ``batch``.

        Counted and isolated as the actor would; the lock is taken once per burst and given back
        by ``ProcessManager.finish_burst``.
        """
        if self not in batch.held:
            self.lock.acquire()
            batch.held.append(self)
        started = time.perf_counter()
        cell = self.cell
        try:
            self._apply(message, batch.items)
        except BrokerflowError as exc:  # answered with the burst: it may rest on an unsaved state
            self._show()
            batch.items.append(Deferred(self, message, None, None, exc, 0))
        except Exception as exc:  # noqa: BLE001 - isolation, as SafeActor gives the actor path
            self._show()
            cell.failed += 1
            log.exception("%s failed on %s", self.name, type(message).__name__)
            batch.items.append(Deferred(self, message, None, None, exc, 0))
        finally:
            cell.processed += 1
            cell.messages += 1
            cell.busy_ms += (time.perf_counter() - started) * 1000.0

    def forget(self, pid: str) -> None:
        """Drop a live state whose save failed: the next command loads what is stored."""
        self.active.pop(pid, None)
        self._show()

    def sweep(self, now_ms: int) -> None:
        self._passivate(now_ms)
        self._show()

    def _apply(self, message: ProcessCommand, deferred: list[Deferred] | None = None) -> None:
        """Apply, persist, keep, answer; with ``deferred`` the save and the answer are left to it."""
        owns = self.owns_pid
        if owns is not None and not owns(message.pid):
            # Its partition changed hands after the pool let the command in: under ``lock``, so once
            # ``ProcessManager.forget_where`` has passed this shard nothing of a lost pid is applied.
            # A START/RESTORE too: its fresh pid was drawn in a partition given away since.
            raise not_owned()
        now = self.now_ms()
        state, texts = (None, NO_TEXTS) if message.cmd in CREATING else self._activate(message.pid)
        guard = message.guard
        if guard is not None:
            guard_before(guard, message.cmd, state, message.input)
        step = machine.apply_command(self.flows, state, message.cmd, message.name, message.input,
                                     message.pid, now)
        if message.cmd in CHANGING:  # a fresh state dict (the machine never changes its argument)
            settle_brand(step.state, message.cmd, message.input, guard)
            if guard is not None:
                guard_after(guard, step.state)
        save = None
        if message.cmd in CREATING:
            self.repo.create(step.state)
        elif message.cmd in CHANGING:
            text, texts = state_json(step.state, texts)  # encodes only the steps this command made
            if deferred is None:
                self.repo.save(step.state, text)
            else:
                save = (step.state, text)
        self._keep(message.pid, step.state, now, texts)
        self._show()  # before the reply: a caller reading the stats next sees this command in them
        if deferred is not None:
            deferred.append(Deferred(self, message, step, save, None, now))
            return
        message.reply.set_result(step.body)
        if step.actions:
            self.run_actions(step.state, step.actions, now)

    def _activate(self, pid: str) -> tuple[dict[str, Any] | None, StepTexts]:
        """The process's state and the JSON texts of its steps as last saved (none when loaded)."""
        entry = self.active.get(pid)
        if entry is not None:
            return entry[0], entry[2]
        state = self.repo.load(pid)
        if state is not None:
            self.activations += 1
        return state, NO_TEXTS

    def _keep(self, pid: str, state: dict[str, Any], now: int, texts: StepTexts) -> None:
        """Hold a live process as the most recently used; let an ended one go at once."""
        if state.get("status") != "active":
            if self.active.pop(pid, None) is not None:
                self.passivations += 1
            return
        self.active[pid] = (state, now, texts)
        self.active.move_to_end(pid)
        self._passivate(now)

    def _passivate(self, now: int) -> None:
        while len(self.active) > self.live_cap:
            self.active.popitem(last=False)
            self.passivations += 1
        while self.active:
            _, last_used, _ = next(iter(self.active.values()))
            if now - last_used <= self.idle_ms:
                break
            self.active.popitem(last=False)
            self.passivations += 1

    def _show(self) -> None:
        self.cell.gauges = {"active": len(self.active), "activations": self.activations,
                            "passivations": self.passivations}

    def run_actions(self, state: dict[str, Any], entries: list[dict[str, Any]], now: int) -> None:
        """The entered states' actions as runs through the action actors (logged like rule runs)."""
        base = action_context(state)
        brand, pid = base["brand"], state.get("pid")
        jobs = [RunJob(run_id=self.run_ids.next(), rule_id=None, rule_version=None, brand=brand,
                       trigger=f"process:{entry['flow']}.{entry['state']}", event_id=str(pid),
                       actions=tuple(entry["actions"]),
                       context={**base, "process.flow": entry["flow"], "process.state": entry["state"]},
                       started_ms=now, origin="process", extra={"pid": pid})
                for entry in entries if entry.get("actions")]
        if jobs:
            self.pipeline.dispatch(jobs)




class ProcessWorker(SafeActor):
    """The thread of one shard: applies the commands told to it and the sweeps."""

    kind = KIND

    def __init__(self, shard: ProcessShard, stats: StatsRegistry) -> None:
        super().__init__(shard.name, stats)
        self.shard = shard
        self.handlers = {ProcessCommand: self.on_command, Sweep: self.on_sweep}

    def on_receive(self, message: Any) -> Any:
        """Everything under the shard's lock, the counting included: the burst path counts into
        this same cell from the API thread, and two unguarded ``+=`` can lose one of them."""
        self.cell.active = True  # visible while it waits for a burst to let go of the shard
        with self.shard.lock:
            return super().on_receive(message)

    def on_command(self, message: ProcessCommand) -> None:
        self.shard.command(message)

    def on_sweep(self, message: Sweep) -> None:
        self.shard.sweep(message.now_ms)


class Burst(Protocol):
    """``api.services.Burst``: work a front door's loop finishes once it has served the burst."""

    def pending(self, finish: Callable[[BurstBatch], None], start: Callable[[], BurstBatch]) -> BurstBatch: ...


class ProcessManager:
    """The front of the pool: picks the worker for a pid; the Services' process handler."""

    def __init__(self, workers: list[pykka.ActorRef], flows: FlowCache, now_ms: Callable[[], int] | None = None,
                 sweep_interval_s: float = MAX_SWEEP_INTERVAL_S, shards: list[ProcessShard] | None = None) -> None:
        self.workers, self.flows, self.shards = workers, flows, shards or []
        self.now_ms, self.sweep_interval_s = now_ms, sweep_interval_s
        # New pids; under ``serve --shards`` the engine sets one that picks pids this shard owns.
        self.new_pid: Callable[[], str] = lambda: uuid.uuid4().hex
        self._owns_pid: Callable[[str], bool] | None = None

    @property
    def owns_pid(self) -> Callable[[str], bool] | None:
        """Under ``serve --shards``/``--cluster``: does this engine own a pid? The API broker, the
        cluster forwarder and the HTTP doors' forwarder send a pid's commands to its owner; one
        that still arrives here (its partition changed hands meanwhile) is refused rather than let
        two engines hold one process. The shards ask it again where they apply a command."""
        return self._owns_pid

    @owns_pid.setter
    def owns_pid(self, owns: Callable[[str], bool] | None) -> None:
        self._owns_pid = owns
        for shard in self.shards:
            shard.owns_pid = owns

    def worker_for(self, pid: str) -> pykka.ActorRef:
        return self.workers[self._index(pid)]

    def _index(self, pid: str) -> int:
        return zlib.crc32(pid.encode()) % len(self.workers)

    def handle(self, cmd: str, params: dict[str, Any], _principal: object, burst: Burst | None = None,
               guard: ProcessGuard | None = None) -> Future:
        """The command's reply. With ``burst`` (``api.services.Burst``) the command is applied on
        the calling thread and answered when the burst closes, after one commit for all of it.
        ``guard``: the caller's brand scope, checked by the worker under the pid's lock.

        Only a loop that serves its callers one burst at a time (the management API's) should
        pass a burst: its commands then keep their order and skip the hand-off to the worker
        thread and back.
        """
        reply: Future = Future()
        pid = self.new_pid() if cmd in CREATING else params.get("pid")
        if not isinstance(pid, str) or not pid:
            reply.set_exception(BadRequest("pid is required", details=[{"path": "pid", "message": "required"}]))
            return reply
        if self.owns_pid is not None and cmd not in CREATING and not self.owns_pid(pid):
            reply.set_exception(not_owned())
            return reply
        index = self._index(pid)
        worker = self.workers[index]
        command = ProcessCommand(cmd, pid, params.get("name"), params.get("input"), reply, guard)
        if burst is not None and index < len(self.shards) and worker.is_alive():
            self.shards[index].apply_in_burst(command, burst.pending(self.finish_burst, BurstBatch))
            return reply
        try:
            worker.tell(command)
        except pykka.ActorDeadError:
            reply.set_exception(Internal("the process workers are stopped (the engine is shutting down)"))
        return reply

    handle.accepts_burst = True  # type: ignore[attr-defined]  # Services may pass a burst
    handle.accepts_guard = True  # type: ignore[attr-defined]  # and a scoped caller's guard

    def finish_burst(self, batch: BurstBatch) -> None:
        """Commit the burst's states in one transaction, give the locks back, answer, run actions.

        A pid whose save failed is answered with that error (also its other commands of the
        burst, which saw the unsaved state) and forgotten in memory, so it reloads what is stored.
        """
        errors: dict[str, Exception] = {}
        try:
            saves = [item.save for item in batch.items if item.save is not None]
            try:
                errors = batch.held[0].repo.save_many(saves) if saves else {}
            except Exception as exc:  # noqa: BLE001 - every saving pid gets it
                errors = {item.message.pid: exc for item in batch.items if item.save is not None}
            for item in batch.items:
                if item.message.pid in errors:
                    item.shard.forget(item.message.pid)
        finally:
            for shard in batch.held:
                shard.lock.release()
        done = []
        for item in batch.items:
            reply, error = item.message.reply, errors.get(item.message.pid, item.error)
            if reply.done():
                continue
            if error is not None or item.step is None:
                reply.set_exception(error or Internal("the command was not applied"))
                continue
            reply.set_result(item.step.body)
            if item.step.actions:
                done.append(item)
        for item in done:  # after every answer: actions are not part of the reply
            try:
                item.shard.run_actions(item.step.state, item.step.actions, item.now)
            except Exception:
                log.exception("state actions of process %s could not be dispatched", item.message.pid,
                              extra={"pid": item.message.pid})

    def forget_where(self, gone: Callable[[str], bool]) -> int:
        """Drop the live states of the pids ``gone`` says another member now owns (``serve
        --cluster`` gave their partitions away): should they come back, they load what is stored."""
        dropped = 0
        for shard in self.shards:
            with shard.lock:
                for pid in [pid for pid in shard.active if gone(pid)]:
                    shard.forget(pid)
                    dropped += 1
        return dropped

    def sweep(self, now_ms: int) -> None:
        """Ask every worker to passivate what has been idle too long (one step of the sweeper)."""
        for worker in self.workers:
            try:
                worker.tell(Sweep(now_ms))
            except pykka.ActorDeadError:
                return

    def run_sweeper(self, stop: threading.Event) -> None:
        """The sweeper thread's loop: ``sweep`` every ``sweep_interval_s`` until ``stop`` is set."""
        clock = self.now_ms
        while clock is not None and not stop.wait(self.sweep_interval_s):
            self.sweep(clock())


def sweep_interval_s(idle_s: float) -> float:
    """Half the idle period (so a process goes within 1.5 x ``idle_s``), between 50 ms and 5 s."""
    return min(MAX_SWEEP_INTERVAL_S, max(0.05, idle_s / 2))


def start_process_pool(count: int, stats: StatsRegistry, flows: FlowCache, repo: ProcessStates, pipeline: Pipeline,
                       run_ids: RunIds, now_ms: Callable[[], int], live_cap: int,
                       idle_s: float) -> ProcessManager:
    """``count`` workers sharing ``live_cap`` live processes; the engine runs ``run_sweeper``."""
    per_worker = max(1, live_cap // max(1, count))
    shards = [ProcessShard(index, stats, flows, repo, pipeline, run_ids, now_ms, per_worker, idle_s)
              for index in range(count)]
    workers = [ProcessWorker.start(shard, stats) for shard in shards]
    return ProcessManager(workers, flows, now_ms, sweep_interval_s(idle_s), shards)
