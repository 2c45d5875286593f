"""Every message that travels between actors: immutable (``RunJob``, ``Candidate`` by convention), one module."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from brokerflow.workflow.events import Event


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Events from the ingress (or echoes of our own changes) for the router."""

    events: tuple[Event, ...]

    @property
    def size(self) -> int:
        return len(self.events)


@dataclass(frozen=True, slots=True)
class ReferenceUpdate:
    """A reference record changed through the management API; the router owns the replica.

    ``reply`` is set once the replica holds the change, so the API can answer only then.
    """

    kind: str
    record: Mapping[str, Any]
    removed: bool = False
    reply: Future | None = None


@dataclass(frozen=True, slots=True)
class ReloadRules:
    """The full active rule set, grouped by brand; sent whenever rules change."""

    rules_by_brand: Mapping[str, tuple[dict, ...]]
    reply: Future | None = None


@dataclass(frozen=True, slots=True)
class ChangeOwnership:
    """``serve --cluster``: the partitions this member owns from here on in the router's mailbox,
    and what a takeover's replay skips (``workflow.cluster.Skips``); ``reply`` once applied."""

    owned: frozenset
    skips: Any
    reply: Future | None = None


@dataclass(slots=True)
class Candidate:
    """One event that mapped to a trigger, with its evaluation context, for one brand.

    Not frozen, like ``RunJob``: the router builds one per event and brand, and a frozen
    dataclass's ``__init__`` (a call of ``object.__setattr__`` per field) took three times as
    long. Still a value by convention: nobody assigns to its fields.
    """

    trigger: str
    event_id: str
    context: Mapping[str, Any]
    depth: int
    ts_ms: int = 0  # event time (the event's ts, else when it was received): aggregate windows use it


@dataclass(frozen=True, slots=True)
class Evaluate:
    items: tuple[Candidate, ...]

    @property
    def size(self) -> int:
        return len(self.items)


@dataclass(slots=True)
class RunJob:
    """One run of one rule (or of a state's actions), carried action by action (routing slip).

    Each action actor performs ``actions[next_index]``, appends its result and passes the job
    on; a failed action ends the run and the remaining actions are recorded as skipped.

    Not frozen, unlike the other messages: a frozen dataclass sets each of its 16 fields
    through ``object.__setattr__`` (~4 µs a job, every run pays it once per action hop). It is
    still used as a value: ``with_result`` returns a new job and leaves this one as it was,
    because an actor may keep the job it was handed past that call (the customer actor reads
    ``next_index`` of the job it performed at commit time to name its echo). Nobody assigns
    to a job's fields: ``with_result`` copies by hand on the hot path, and elsewhere
    ``dataclasses.replace`` still makes a changed copy.
    """

    run_id: int
    rule_id: int | None
    rule_version: int | None
    brand: str | None
    trigger: str
    event_id: str | None
    actions: tuple[Mapping[str, Any], ...]
    context: Mapping[str, Any]
    started_ms: int
    depth: int = 0
    results: tuple[Mapping[str, Any], ...] = ()
    status: str = "running"
    error: str | None = None
    reply: Future | None = None
    origin: str = "rule"
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def next_index(self) -> int:
        return len(self.results)

    def log_fields(self) -> dict[str, Any]:
        """``extra=`` for a log line about this run: JSON logs carry the ids (text logs ignore them)."""
        fields = {"run_id": self.run_id, "rule_id": self.rule_id, "event_id": self.event_id}
        pid = self.extra.get("pid")
        if pid is not None:
            fields["pid"] = pid
        return fields

    @property
    def next_action(self) -> Mapping[str, Any] | None:
        if self.status != "running" or len(self.results) >= len(self.actions):
            return None
        return self.actions[len(self.results)]

    def with_result(self, status: str, ms: float, error: str | None = None,
                    **detail: Any) -> RunJob:
        """This job with the next action's result appended; a failure ends the run."""
        results = self.results
        result: dict[str, Any] = {"type": self.actions[len(results)].get("type"), "status": status,
                                  "ms": round(ms, 3)}
        if error:
            result["error"] = error
        if detail:
            result.update(detail)
        if status == "failed":
            return self._with(results + (result,), "failed", error)
        return self._with(results + (result,), self.status, self.error)

    def parked(self, result: Mapping[str, Any]) -> RunJob:
        """This job with its next action's result appended and the run status ``retrying``: the
        run log writes it as it stands; the run continues when the webhook has its outcome."""
        return self._with(self.results + (dict(result),), "retrying", None)

    def _with(self, results: tuple[Mapping[str, Any], ...], status: str, error: str | None) -> RunJob:
        """A copy with new progress; positional, in field order (3x faster than ``replace``)."""
        return RunJob(self.run_id, self.rule_id, self.rule_version, self.brand, self.trigger, self.event_id,
                      self.actions, self.context, self.started_ms, self.depth, results, status, error,
                      self.reply, self.origin, self.extra)


@dataclass(frozen=True, slots=True)
class JobBatch:
    """Jobs whose next action belongs to the receiving action actor."""

    jobs: tuple[RunJob, ...]

    @property
    def size(self) -> int:
        return len(self.jobs)


@dataclass(frozen=True, slots=True)
class RunsFinished:
    """Jobs with nothing left to do, for the run log."""

    jobs: tuple[RunJob, ...]

    @property
    def size(self) -> int:
        return len(self.jobs)


@dataclass(frozen=True, slots=True)
class StateChanges:
    """What rule actors changed of their state, for the writer: cooldown rows ``(rule_id, key,
    fired_ms)``, window rows ``(brand, stream, key, ts, value, event identity)``, horizons ``(brand,
    stream, before_ts)``."""

    cooldowns: tuple[tuple[Any, str, int], ...] = ()
    entries: tuple[tuple[str, str, str, int, Any, str | None], ...] = ()
    horizons: tuple[tuple[str, str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class ReloadState:
    """``serve --cluster``: partitions gained from another member. Told by the router where the
    ownership changed in its mailbox, so the rule actor reloads their cooldowns and window entries
    from storage before it evaluates any of their events (``workflow.rules.statekeys.StateKeys``)."""

    keys: Any


@dataclass(frozen=True, slots=True)
class Flush:
    """Write everything buffered now; the reply completes once it is durable."""

    reply: Future | None = None


@dataclass(frozen=True, slots=True)
class KycStepUpdate:
    """A ``kyc.step.push`` approved/rejected: the KYC actor updates the customer's profile."""

    customer_id: int
    brand: str | None
    step_code: str
    level: int | None
    status: str
    ticket: tuple[str, int] | None = None  # the event's (source, seq): settled once the profile is stored


@dataclass(frozen=True, slots=True)
class WebhookDone:
    """A webhook finished on the pool; back on the actor's thread to pass the job on.

    ``outcome``: the job as it goes on (its webhook's result appended, or parked while the
    delivery waits for a retry); ``None``: the job with ``ok``/``status``/``error`` appended.
    """

    job: RunJob
    host: str
    ok: bool
    status: int | None
    error: str | None
    ms: float
    outcome: RunJob | None = None


# -- the automation modes (docs/automation.md) -------------------------------------------------
@dataclass(frozen=True, slots=True)
class BeforeRequest:
    """A system is about to write ``record``; the reply gets ``{"record", "changed"}`` or an error."""

    resource: str
    operation: str
    record: Mapping[str, Any]
    reply: Future


@dataclass(frozen=True, slots=True)
class ExecRequest:
    """Run a ``manual`` rule now; the reply gets ``{"run", "trace"}`` once the run is logged."""

    rule: Mapping[str, Any]
    input: Mapping[str, Any]
    caller: str
    reply: Future


@dataclass(frozen=True, slots=True)
class SinkRequest:
    """A verified sink request (``workflow.sinks.request_view``); the reply gets the response map."""

    request: Mapping[str, Any]
    reply: Future
    wait: bool = True


@dataclass(frozen=True, slots=True)
class MailEvent:
    """A mail received (SMTP listener) or sent (``email.send``): runs the trigger's rules."""

    trigger: str
    mail: Mapping[str, Any]
    brand: str | None = None
    depth: int = 0


@dataclass(frozen=True, slots=True)
class Tick:
    """One scheduler step at ``now_ms``; the reply gets the fired ``(rule_id, due_ms)`` pairs."""

    now_ms: int
    reply: Future | None = None


@dataclass(frozen=True, slots=True)
class EmailDone:
    """A mail left for the relay (or failed) on the pool; back on the e-mail actor's thread."""

    job: RunJob
    mail: Mapping[str, Any]
    error: str | None
    ms: float
