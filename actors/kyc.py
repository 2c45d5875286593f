"""The KYC manager: the single writer of customer KYC profiles (its decisions live in ``workflow.policies.kyc``).

Profiles are cached here once loaded; this actor is their only writer, so the cache is the
truth and storage is written through on every change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from brokerflow.actors.actions import ActionActor
from brokerflow.actors.base import StatsRegistry
from brokerflow.actors.messages import JobBatch, KycStepUpdate, RunJob
from brokerflow.actors.pipeline import Pipeline
from brokerflow.bus.completion import Completion
from brokerflow.errors import ActionFailed
from brokerflow.workflow.policies import kyc
from brokerflow.workflow.reference import ReferenceData

if TYPE_CHECKING:
    from brokerflow.bus.outbound import Outbound

log = logging.getLogger("brokerflow.kyc")

PROFILE_CACHE = 50_000


class KycProfiles(Protocol):
    """``store.kyc`` of the storage package: the profiles this actor alone writes."""

    def get_profile(self, customer_id: int) -> dict | None: ...

    def get_profiles(self, customer_ids: list[int]) -> dict[int, dict]: ...

    def save_profiles(self, profiles: list[dict]) -> list[dict]: ...


class KycActor(ActionActor):
    kind = "kyc"

    def __init__(self, stats: StatsRegistry, pipeline: Pipeline, now_ms: Callable[[], int],
                 refs: ReferenceData, kyc_repo: KycProfiles, outbound: Outbound,
                 completion: Completion | None = None) -> None:
        super().__init__("kyc", stats, pipeline, now_ms)
        self.refs, self.repo, self.outbound = refs, kyc_repo, outbound
        self.completion = completion
        self.profiles: dict[int, dict[str, Any]] = {}
        self.dirty: dict[int, tuple[dict[str, Any], RunJob | None]] = {}
        self.handlers[KycStepUpdate] = self.on_step_update

    def profile(self, customer_id: int, brand: str | None) -> dict[str, Any]:
        cached = self.profiles.get(customer_id)
        if cached is None:
            cached = self.repo.get_profile(customer_id) or kyc.new_profile(customer_id, brand)
            self._cache(customer_id, cached)
        return cached

    def on_jobs(self, message: JobBatch) -> None:
        """Load the batch's uncached profiles in one query, then perform the jobs.

        Only ids of known customers are preloaded; anything else (no customer, an unknown one,
        an id of the wrong type from a process's input) is left to its own job, which fails
        alone in ``perform``.
        """
        missing: dict[int, str | None] = {}
        customers = self.refs.customers
        for job in message.jobs:
            customer_id = job.context.get("_customer_id")
            if type(customer_id) is int and customer_id not in self.profiles and customer_id in customers:
                missing.setdefault(customer_id, job.brand)
        if missing:
            try:
                stored = self.repo.get_profiles(list(missing))
            except Exception:  # noqa: BLE001 - each job's own lookup will report it
                log.exception("kyc: could not preload %d profiles", len(missing))
            else:
                for customer_id, brand in missing.items():
                    self._cache(customer_id, stored.get(customer_id) or kyc.new_profile(customer_id, brand))
        super().on_jobs(message)

    def _cache(self, customer_id: int, profile: dict[str, Any]) -> None:
        if len(self.profiles) >= PROFILE_CACHE:
            self.profiles.pop(next(iter(self.profiles)))
        self.profiles[customer_id] = profile

    def perform(self, job: RunJob, params: Mapping[str, Any]) -> dict[str, Any]:
        action_type = job.next_action["type"]
        customer_id = job.context.get("_customer_id")
        if customer_id is None:
            raise ActionFailed(f"{action_type} needs a linked customer; this event has none")
        if customer_id not in self.refs.customers:
            raise ActionFailed(f"{action_type}: customer {customer_id} is not known")
        profile = self.profile(customer_id, job.brand)
        if action_type == "kyc.require_step":
            template = self.refs.templates.get((job.brand, params.get("step_code")))
            if template is None:
                raise ActionFailed(f"no KYC step template {params.get('step_code')!r} "
                                   f"for brand {job.brand!r}")
            updated, changed = kyc.require_step(profile, template, params.get("level"), params.get("reason"))
        elif kyc.raises_level(profile, params["level"]):  # the brand's templates only when raising
            templates = self.refs.active_templates(job.brand)
            updated, changed = kyc.raise_level(profile, params["level"], templates, params.get("reason"))
        else:
            updated, changed = profile, False
        if changed:
            self.profiles[customer_id] = updated
            self.dirty[customer_id] = (updated, job)
        return {"changed": changed, "required_level": updated.get("required_level")}

    def commit(self) -> None:
        if not self.dirty:
            return
        dirty, self.dirty = self.dirty, {}
        try:  # one transaction: every changed profile is stored, or none
            self.repo.save_profiles([profile for profile, _ in dirty.values()])
        except Exception:
            for unsaved in dirty:  # reload the stored truth next time
                self.profiles.pop(unsaved, None)
            raise
        self.outbound.send_many("kyc.changed", [{
            "customer_id": customer_id, "required_level": profile.get("required_level"),
            "steps": profile.get("steps", []),
            "rule_id": job.rule_id if job else None, "run_id": job.run_id if job else None}
            for customer_id, (profile, job) in dirty.items()])

    def on_step_update(self, message: KycStepUpdate) -> None:
        profile = self.profile(message.customer_id, message.brand)
        updated, changed = kyc.apply_step_status(profile, message.step_code, message.level, message.status)
        if changed:
            self.profiles[message.customer_id] = updated
            self.dirty[message.customer_id] = (updated, None)
            self.commit()
        if self.completion is not None and message.ticket is not None:
            self.completion.settle([(message.ticket, -1)])
