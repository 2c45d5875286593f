"""``serve --cluster``'s shared state in PostgreSQL: members, partition leases, changes.

Every statement is one atomic SQL statement (or one transaction of a few), and every time is
the **database's** clock (``clock_timestamp()``), never a member's: a lease expires at the same
instant for every member whatever their clocks say. Acquiring is an ``INSERT ... ON CONFLICT DO
UPDATE ... WHERE`` the lease is free or expired, evaluated on the locked row: of two members
asking at once, one gets it. Renewing and releasing only touch rows ``WHERE owner = me``; a
member's final checkpoints are written only for partitions whose lease it still holds.

PostgreSQL only: the engine refuses ``--cluster`` on SQLite before it gets here.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from brokerflow.storage.repositories.base import Repository

__all__ = ["ClusterRepository", "DB_NOW_MS", "fenced_checkpoints_sql"]

DB_NOW_MS = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint"
CHANGES_LOCK = 0x62665F6368616E67  # "bf_chang": the advisory lock that orders cluster_changes commits


def fenced_checkpoints_sql(rows: int) -> str:
    """Upsert ``rows`` checkpoints ``(source, partition, seq, updated_at)`` followed by the owner:
    only those of partitions whose lease the owner holds now are written."""
    values = ", ".join(["(%s, %s::integer, %s::bigint, %s::bigint)"] * rows)
    return (f'INSERT INTO "checkpoints" ("source", "partition", "seq", "updated_at") '
            f'SELECT v.source, v.partition, v.seq, v.updated_at FROM (VALUES {values}) '
            f'AS v(source, partition, seq, updated_at) JOIN "partition_leases" l ON l."partition" = v.partition '
            f'AND l."owner" = %s AND l."expires_at_ms" > {DB_NOW_MS} '
            f'ON CONFLICT ("source", "partition") DO UPDATE SET "seq" = excluded."seq", '
            f'"updated_at" = excluded."updated_at"')


class ClusterRepository(Repository):
    """Members, leases and changes of one cluster (one database, one schema)."""

    def _rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        cursor = self._db.execute_sql(sql, list(params))
        return list(cursor.fetchall()) if cursor.description else []

    # -- time and members -------------------------------------------------------------------
    def now_ms(self) -> int:
        """The database's clock (unix ms): what every lease is measured against."""
        with self._read():
            return int(self._rows(f"SELECT {DB_NOW_MS}")[0][0])

    def heartbeat(self, member: str, api_endpoint: str, pid: int, host: str) -> int:
        """Say ``member`` is alive now (and where its API answers); returns the database's time."""
        with self._write():
            rows = self._rows(
                f'INSERT INTO "cluster_members" '
                f'("member", "api_endpoint", "pid", "host", "heartbeat_ms", "started_ms") '
                f'VALUES (%s, %s, %s, %s, {DB_NOW_MS}, {DB_NOW_MS}) ON CONFLICT ("member") DO UPDATE SET '
                f'"api_endpoint" = excluded."api_endpoint", "heartbeat_ms" = excluded."heartbeat_ms" '
                f'RETURNING "heartbeat_ms"', (member, api_endpoint, pid, host))
        return int(rows[0][0])

    def members(self, alive_ms: int) -> list[dict[str, Any]]:
        """Members whose heartbeat is younger than ``alive_ms``, by id, with ``age_ms``."""
        with self._read():
            rows = self._rows(
                f'SELECT "member", "api_endpoint", "pid", "host", "started_ms", {DB_NOW_MS} - "heartbeat_ms" '
                f'FROM "cluster_members" WHERE "heartbeat_ms" > {DB_NOW_MS} - %s ORDER BY "member"', (alive_ms,))
        return [{"member": m, "api": api, "pid": pid, "host": host, "started_ms": started, "age_ms": int(age)}
                for m, api, pid, host, started, age in rows]

    def leave(self, member: str) -> int:
        """``member`` stops: its leases are freed and its row removed; returns the leases freed."""
        with self._write():
            freed = self._rows('UPDATE "partition_leases" SET "owner" = NULL, "expires_at_ms" = 0 '
                               'WHERE "owner" = %s RETURNING "partition"', (member,))
            self._rows('DELETE FROM "cluster_members" WHERE "member" = %s', (member,))
        return len(freed)

    # -- leases -------------------------------------------------------------------------------
    def owners(self) -> dict[int, str]:
        """Partition -> owner of every lease that has not expired."""
        with self._read():
            rows = self._rows(f'SELECT "partition", "owner" FROM "partition_leases" '
                              f'WHERE "owner" IS NOT NULL AND "expires_at_ms" > {DB_NOW_MS}')
        return {int(partition): owner for partition, owner in rows}

    def acquire(self, member: str, partitions: Collection[int], ttl_ms: int) -> dict[int, int]:
        """Take the free or expired leases among ``partitions`` for ``ttl_ms``; partition -> epoch of those won.

        One statement: each row is locked and its condition checked again on the latest version,
        so of members asking at once exactly one wins a partition.
        """
        if not partitions:
            return {}
        with self._write():
            rows = self._rows(
                f'INSERT INTO "partition_leases" ("partition", "owner", "expires_at_ms", "epoch") '
                f'SELECT p, %s, {DB_NOW_MS} + %s, 1 FROM unnest(%s::integer[]) AS p '
                f'ON CONFLICT ("partition") DO UPDATE SET "owner" = excluded."owner", '
                f'"expires_at_ms" = excluded."expires_at_ms", "epoch" = "partition_leases"."epoch" + 1 '
                f'WHERE "partition_leases"."owner" IS NULL OR "partition_leases"."expires_at_ms" <= {DB_NOW_MS} '
                f'RETURNING "partition", "epoch"', (member, ttl_ms, sorted(partitions)))
        return {int(partition): int(epoch) for partition, epoch in rows}

    def renew(self, member: str, partitions: Collection[int], ttl_ms: int) -> set[int]:
        """Extend ``member``'s unexpired leases among ``partitions``; the partitions renewed.

        A lease that expired is not renewed even if nobody took it: its owner has stopped
        (fenced) and takes it again as a new owner would, from the checkpoint.
        """
        if not partitions:
            return set()
        with self._write():
            rows = self._rows(
                f'UPDATE "partition_leases" SET "expires_at_ms" = {DB_NOW_MS} + %s '
                f'WHERE "owner" = %s AND "partition" = ANY(%s::integer[]) AND "expires_at_ms" > {DB_NOW_MS} '
                f'RETURNING "partition"', (ttl_ms, member, sorted(partitions)))
        return {int(partition) for (partition,) in rows}

    def release(self, member: str, partitions: Collection[int],
                checkpoints: Sequence[tuple[str, int, int]] = ()) -> set[int]:
        """Store ``checkpoints`` ``(source, partition, seq)`` of the partitions ``member`` still
        holds, then free those leases, in one transaction; the partitions freed."""
        if not partitions:
            return set()
        with self._write():
            if checkpoints:
                params: list[object] = []
                now = self._clock()
                for source, partition, seq in checkpoints:
                    params += [source, partition, seq, now]
                self._rows(fenced_checkpoints_sql(len(checkpoints)), [*params, member])
            rows = self._rows('UPDATE "partition_leases" SET "owner" = NULL, "expires_at_ms" = 0 '
                              'WHERE "owner" = %s AND "partition" = ANY(%s::integer[]) RETURNING "partition"',
                              (member, sorted(partitions)))
        return {int(partition) for (partition,) in rows}

    # -- changes ------------------------------------------------------------------------------
    def publish(self, member: str, change: Mapping[str, Any]) -> int:
        """A change made through ``member``'s API, for the others; returns its id.

        Ids come from a sequence, which hands them out in order but lets them commit out of order:
        a reader between the two commits would move past the id still uncommitted and never see it.
        The transaction-scoped advisory lock makes changes commit in id order.
        """
        with self._write():
            self._rows(f"SELECT pg_advisory_xact_lock({CHANGES_LOCK})", ())
            rows = self._rows(f'INSERT INTO "cluster_changes" ("member", "change", "created_ms") '
                              f'VALUES (%s, %s, {DB_NOW_MS}) RETURNING "id"',
                              (member, json.dumps(change, default=str)))
        return int(rows[0][0])

    def last_change(self) -> int:
        """The id of the newest change (0 when none): a member starting applies only later ones."""
        with self._read():
            return int(self._rows('SELECT COALESCE(MAX("id"), 0) FROM "cluster_changes"')[0][0])

    def changes_after(self, after_id: int, limit: int = 500) -> list[tuple[int, str, dict[str, Any] | None]]:
        """``(id, member, change)`` of the changes after ``after_id``, oldest first (None: unreadable)."""
        with self._read():
            rows = self._rows('SELECT "id", "member", "change" FROM "cluster_changes" WHERE "id" > %s '
                              'ORDER BY "id" LIMIT %s', (after_id, limit))
        out: list[tuple[int, str, dict[str, Any] | None]] = []
        for change_id, member, text in rows:
            try:
                change = json.loads(text)
            except ValueError:
                change = None
            out.append((int(change_id), member, change if isinstance(change, dict) else None))
        return out

    def trim_changes(self, older_than_ms: int) -> int:
        """Forget changes older than ``older_than_ms`` (every member has long applied them)."""
        with self._write():
            rows = self._rows(f'DELETE FROM "cluster_changes" WHERE "created_ms" < {DB_NOW_MS} - %s '
                              f'RETURNING "id"', (older_than_ms,))
        return len(rows)
