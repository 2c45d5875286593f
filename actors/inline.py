"""The ``inline`` executor: actions whose effect is the run's own result, not a side effect.

``record.set`` and ``operation.reject`` shape a before-hook's answer, ``sink.respond`` a sink's
HTTP response; they only write their outcome into the action result, which the waiting mode
reads back from the logged run. ``event.emit`` feeds an event into the engine's own input one
causal level deeper (the loop bound applies), so a KYC provider's callback can become the
``kyc.step.push`` the rest of the engine already understands.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from brokerflow.actors.actions import ActionActor
from brokerflow.actors.base import StatsRegistry
from brokerflow.actors.messages import RunJob
from brokerflow.actors.pipeline import Pipeline
from brokerflow.errors import ActionFailed, MalformedEvent
from brokerflow.workflow.catalog import EMIT_TOPICS
from brokerflow.workflow.events import Event, parse_event
from brokerflow.workflow.modes.contexts import render_record, render_value, set_field_name
from brokerflow.workflow.templates import render

REJECTED = "rejected"


class InlineActor(ActionActor):
    kind = "inline"

    def __init__(self, stats: StatsRegistry, pipeline: Pipeline, now_ms: Callable[[], int],
                 emit: Callable[[list[Event]], None]) -> None:
        super().__init__("inline", stats, pipeline, now_ms)
        self.emit = emit
        self.performers: dict[str, Callable[[RunJob, Mapping[str, Any]], dict[str, Any]]] = {
            "record.set": self.record_set, "operation.reject": self.reject,
            "sink.respond": self.respond, "event.emit": self.event_emit,
        }

    def perform(self, job: RunJob, params: Mapping[str, Any]) -> dict[str, Any]:
        kind = (job.next_action or {}).get("type")
        performer = self.performers.get(kind)
        if performer is None:
            raise ActionFailed(f"{kind!r} is not an inline action")
        return performer(job, params)

    def _perform_one(self, job: RunJob) -> RunJob:
        done = super()._perform_one(job)
        last = done.results[-1]
        if last.get("status") != "success":
            return done
        if last["type"] == "operation.reject":
            # Ends the run: later actions are recorded as skipped; the run itself succeeded.
            return replace(done, status=REJECTED)
        if last["type"] == "record.set":
            # Later actions' templates see the value that will be written.
            prefix = job.trigger.split(".")[0]
            return replace(done, context={**done.context, f"{prefix}.{last['field']}": last["value"]})
        return done

    @staticmethod
    def record_set(job: RunJob, params: Mapping[str, Any]) -> dict[str, Any]:
        resource = job.trigger.split(".")[0]
        try:
            field = set_field_name(resource, params.get("field"))
        except ValueError as exc:
            raise ActionFailed(str(exc)) from None
        return {"field": field, "value": render_value(params.get("value"), job.context)}

    @staticmethod
    def reject(job: RunJob, params: Mapping[str, Any]) -> dict[str, Any]:
        return {"message": render(str(params.get("message") or "rejected"), job.context)}

    @staticmethod
    def respond(job: RunJob, params: Mapping[str, Any]) -> dict[str, Any]:
        body = params.get("body")
        headers = {str(k): render(str(v), job.context) for k, v in (params.get("headers") or {}).items()}
        return {"http_status": int(params.get("status") or 200), "headers": headers,
                "body": render(body, job.context) if isinstance(body, str) else body}

    def event_emit(self, job: RunJob, params: Mapping[str, Any]) -> dict[str, Any]:
        topic = params.get("topic")
        if topic not in EMIT_TOPICS:
            raise ActionFailed(f"event.emit may feed {', '.join(EMIT_TOPICS)}, not {topic!r}")
        record = render_record(params.get("record") or {}, job.context)
        payload: dict[str, Any] = {"record": record, "id": f"run-{job.run_id}-{job.next_index}"}
        if params.get("event"):
            payload["event"] = params["event"]
        try:
            event = parse_event(topic, payload, self.now_ms(), depth=job.depth + 1)
        except MalformedEvent as exc:
            raise ActionFailed(f"event.emit: {exc.text}") from None
        self.emit([event])
        return {"topic": topic, "event_id": event.key}
