"""Claims of deferred-rule due times: each (rule, due time) fires once, across engines and restarts."""

from __future__ import annotations

from brokerflow.storage.repositories.base import Repository


class ScheduleRepository(Repository):
    def claim(self, rule_id: int, due_at_ms: int) -> bool:
        """True for exactly one caller per ``(rule_id, due_at_ms)``: the unique key decides races."""
        with self._write():
            cursor = self._db.execute_sql(
                'INSERT INTO "schedule_claims" ("rule_id", "due_at", "claimed_at") '
                f"VALUES ({self._db.param}, {self._db.param}, {self._db.param}) "
                'ON CONFLICT ("rule_id", "due_at") DO NOTHING',
                (rule_id, due_at_ms, self._clock()),
            )
            return cursor.rowcount == 1

    def prune(self, before_ms: int) -> int:
        """Forget claims for due times before ``before_ms`` (they can never be due again)."""
        model = self._m.ScheduleClaim
        with self._write():
            return model.delete().where(model.due_at < before_ms).execute()
