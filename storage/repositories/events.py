"""What the ingress has already processed: recent event ids and the last seq per source.

The ingress keeps these in memory for de-duplication and gap counting, and writes them here
in batches so a restarted engine does not run an event twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import peewee

from storage.bulk import insert_rows
from storage.repositories.base import Repository


class EventRepository(Repository):
    def load_state(self, limit_ids: int = 100_000) -> tuple[list[str], dict[str, int]]:
        """``(recent ids, newest last; {source: last_seq})``."""
        seen, seqs = self._m.ProcessedEvent, self._m.SourceSeq
        with self._read():
            query = seen.select(seen.event_id).order_by(seen.id.desc()).limit(limit_ids)
            newest_first = [event_id for (event_id,) in query.tuples()]
            last_seq = dict(seqs.select(seqs.source, seqs.last_seq).tuples())
        newest_first.reverse()
        return newest_first, last_seq

    def record(self, ids: Iterable[str], last_seq: Mapping[str, int]) -> None:
        """Remember processed ids (already known ones are ignored) and sources' last seqs."""
        now = self._clock()
        id_rows = [(event_id, now) for event_id in dict.fromkeys(ids)]
        seq_rows = list(last_seq.items())
        with self._write():
            insert_rows(self._db, "processed_events", ("event_id", "seen_at"), id_rows,
                        'ON CONFLICT ("event_id") DO NOTHING')
            insert_rows(self._db, "source_seqs", ("source", "last_seq"), seq_rows,
                        'ON CONFLICT ("source") DO UPDATE SET "last_seq" = excluded."last_seq"')

    def prune(self, keep: int) -> int:
        """Forget all but the ids of the newest ``keep`` insertions; returns how many were forgotten.

        The ingress calls it every few thousand events, so it costs an index lookup plus the
        rows it deletes (never a scan of the kept ones). Where the database skipped ids
        (PostgreSQL's sequence advances on a refused duplicate) slightly fewer are kept.
        """
        seen = self._m.ProcessedEvent
        with self._write():
            if keep <= 0:
                return seen.delete().execute()
            newest = seen.select(peewee.fn.MAX(seen.id)).scalar()
            if newest is None:
                return 0
            return seen.delete().where(seen.id <= newest - keep).execute()
