"""Webhook deliveries that outlive one attempt: pending retries and dead letters (PROTOCOL section 10).

A retry row is the delivery (request and retry policy), its attempts so far, the run to
continue once it has an outcome, and when the next attempt is due. A sender *claims* a due
row (``claimed_until``, one conditional update per row) before it sends, so two pollers, or a
poller and an engine restarted after a crash, never send the same attempt twice at once; a
claim that is never finished (the engine was killed) lapses and the row is sent again, with
the same ``Idempotency-Key``. Moving a delivery to the dead letters deletes its retry row in
the same transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from peewee import fn

from brokerflow.errors import NotFound
from brokerflow.storage.repositories.base import Repository, invalid, is_int

MAX_LIMIT, DEFAULT_LIMIT = 1000, 100


def _retry(row: Any) -> dict[str, Any]:
    return {"id": row.id, "run_id": row.run_id, "action_index": row.action_index, "rule_id": row.rule_id,
            "brand": row.brand, "due_at": row.due_at, "claimed_until": row.claimed_until,
            "delivery": row.delivery, "attempts": row.attempts or [], "job": row.job, "created_at": row.created_at}


def _dead(row: Any) -> dict[str, Any]:
    return {"id": row.id, "run_id": row.run_id, "action_index": row.action_index, "rule_id": row.rule_id,
            "brand": row.brand, "url": row.url, "delivery": row.delivery, "attempts": row.attempts or [],
            "last_error": row.last_error, "created_at": row.created_at}


class WebhookRepository(Repository):
    # -- pending retries ---------------------------------------------------------------------
    def schedule(self, retry: dict[str, Any]) -> int:
        """Store (or move on) the pending retry of ``(run_id, action_index)``, unclaimed; its id."""
        model = self._m.WebhookRetry
        values = {"run_id": retry["run_id"], "action_index": retry["action_index"], "rule_id": retry.get("rule_id"),
                  "brand": retry.get("brand"), "due_at": int(retry["due_at"]), "claimed_until": 0,
                  "delivery": retry["delivery"], "attempts": list(retry.get("attempts") or []),
                  "job": retry["job"], "created_at": self._clock()}
        with self._write():
            model.insert(**values).on_conflict(
                conflict_target=[model.run_id, model.action_index],
                preserve=[model.due_at, model.claimed_until, model.delivery, model.attempts, model.job],
            ).execute()
            return model.select(model.id).where(
                (model.run_id == values["run_id"]) & (model.action_index == values["action_index"])).scalar()

    def due(self, now_ms: int, limit: int = 100) -> list[dict[str, Any]]:
        """Unclaimed (or lapsed) retries due at ``now_ms``, the longest due first; not claimed yet."""
        model = self._m.WebhookRetry
        query = (model.select().where((model.due_at <= now_ms) & (model.claimed_until <= now_ms))
                 .order_by(model.due_at, model.id).limit(max(1, limit)))
        with self._read():
            return [_retry(row) for row in query]

    def claim(self, ids: Sequence[int], now_ms: int, until_ms: int) -> list[int]:
        """The ids of ``ids`` this caller now holds until ``until_ms`` (the others someone else holds)."""
        model = self._m.WebhookRetry
        claimed = []
        with self._write():
            for retry_id in ids:
                updated = (model.update(claimed_until=until_ms)
                           .where((model.id == retry_id) & (model.claimed_until <= now_ms)).execute())
                if updated == 1:
                    claimed.append(retry_id)
        return claimed

    def release(self, ids: Collection[int]) -> None:
        """Give claimed retries back unsent (the engine stops): the next poll takes them."""
        if not ids:
            return
        model = self._m.WebhookRetry
        with self._write():
            model.update(claimed_until=0).where(model.id.in_(list(ids))).execute()

    def reschedule(self, retry_id: int, due_at: int, attempts: list[dict[str, Any]]) -> None:
        """After another failed attempt: due again at ``due_at``, unclaimed, with its attempts so far."""
        model = self._m.WebhookRetry
        with self._write():
            model.update(due_at=int(due_at), claimed_until=0, attempts=attempts).where(model.id == retry_id).execute()

    def finish(self, retry_id: int) -> None:
        """The delivery has its outcome: no more attempts."""
        model = self._m.WebhookRetry
        with self._write():
            model.delete().where(model.id == retry_id).execute()

    def next_due(self, now_ms: int) -> int | None:
        """When a pending retry can next be taken: the earliest due time of the unclaimed ones,
        or the earliest end of a claim (a claim that lapses is due again); None when none is pending."""
        model = self._m.WebhookRetry
        with self._read():
            free = model.select(fn.MIN(model.due_at)).where(model.claimed_until <= now_ms).scalar()
            held = model.select(fn.MIN(model.claimed_until)).where(model.claimed_until > now_ms).scalar()
        times = [t for t in (free, held) if t is not None]
        return min(times) if times else None

    def pending_count(self) -> int:
        model = self._m.WebhookRetry
        with self._read():
            return model.select().count()

    # -- dead letters ------------------------------------------------------------------------
    def bury(self, retry_id: int | None, dead: dict[str, Any]) -> int:
        """Keep an exhausted delivery as a dead letter (replacing one of the same run and action),
        dropping its retry row in the same transaction; the dead letter's id."""
        retry, model = self._m.WebhookRetry, self._m.WebhookDeadLetter
        values = {"run_id": dead["run_id"], "action_index": dead["action_index"], "rule_id": dead.get("rule_id"),
                  "brand": dead.get("brand"), "url": str(dead["url"]), "delivery": dead["delivery"],
                  "attempts": list(dead.get("attempts") or []), "last_error": dead.get("last_error"),
                  "claimed_until": 0, "created_at": self._clock()}
        with self._write():
            if retry_id is not None:
                retry.delete().where(retry.id == retry_id).execute()
            model.insert(**values).on_conflict(
                conflict_target=[model.run_id, model.action_index],
                preserve=[model.delivery, model.attempts, model.last_error, model.claimed_until, model.created_at],
            ).execute()
            return model.select(model.id).where(
                (model.run_id == values["run_id"]) & (model.action_index == values["action_index"])).scalar()

    def dead_letters(self, limit: int = DEFAULT_LIMIT, brand: str | None = None,
                     brands: Collection[str] | None = None) -> list[dict[str, Any]]:
        """Newest first; ``limit`` capped at 1000."""
        if not is_int(limit) or limit < 1:
            raise invalid("limit", "must be a positive integer")
        model = self._m.WebhookDeadLetter
        query = model.select().order_by(model.id.desc()).limit(min(limit, MAX_LIMIT))
        if brand is not None:
            query = query.where(model.brand == brand)
        if brands is not None:
            if not brands:
                return []
            query = query.where(model.brand.in_(list(brands)))
        with self._read():
            return [_dead(row) for row in query]

    def dead_letter(self, dead_id: Any) -> dict[str, Any]:
        if not is_int(dead_id):
            raise invalid("id", "must be an integer")
        model = self._m.WebhookDeadLetter
        with self._read():
            row = model.get_or_none(model.id == dead_id)
        if row is None:
            raise NotFound(f"dead letter {dead_id} not found")
        return _dead(row)

    def claim_dead_letter(self, dead_id: int, now_ms: int, until_ms: int) -> bool:
        """True for the one caller that may redeliver it now (another redelivery may be under way)."""
        model = self._m.WebhookDeadLetter
        with self._write():
            return (model.update(claimed_until=until_ms)
                    .where((model.id == dead_id) & (model.claimed_until <= now_ms)).execute()) == 1

    def record_redelivery(self, dead_id: int, attempts: list[dict[str, Any]], last_error: str | None) -> None:
        """A redelivery failed: the dead letter stays, with the attempt added, unclaimed."""
        model = self._m.WebhookDeadLetter
        with self._write():
            model.update(attempts=attempts, last_error=last_error, claimed_until=0).where(model.id == dead_id).execute()

    def discard(self, dead_id: int) -> bool:
        model = self._m.WebhookDeadLetter
        with self._write():
            return model.delete().where(model.id == dead_id).execute() == 1

    def dead_letter_count(self) -> int:
        model = self._m.WebhookDeadLetter
        with self._read():
            return model.select().count()
