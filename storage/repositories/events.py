"""What the ingress has already processed: recent event ids and the last seq per source.

The ingress keeps these in memory for de-duplication and gap counting, and writes them here
in batches so a restarted engine does not run an event twice. Both tables are bounded like
the ingress's memory: ``prune`` keeps the newest ids and the most recently stored sources
(``source_seqs.seen_at``), and ``load_state`` reads back only those.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import peewee

from brokerflow.storage.bulk import insert_rows
from brokerflow.storage.repositories.base import Repository

DEFAULT_KEEP_SOURCES = 10_000  # the ingress's source cap (bus.sequence.DEFAULT_MAX_SOURCES)


class EventRepository(Repository):
    def load_state(self, limit_ids: int = 100_000,
                   limit_sources: int = DEFAULT_KEEP_SOURCES) -> tuple[list[str], dict[str, int]]:
        """``(recent ids, newest last; {source: last_seq} of the newest sources, least recent first)``.

        Only the ``limit_sources`` most recently stored sources come back, in the order the
        ``Deduplicator`` keeps them, so its cap forgets the least recent after a restart as it
        does while running (a sender's invented sources cannot outlive the real publishers).
        """
        seen, seqs = self._m.ProcessedEvent, self._m.SourceSeq
        with self._read():
            query = seen.select(seen.event_id).order_by(seen.id.desc()).limit(limit_ids)
            newest_first = [event_id for (event_id,) in query.tuples()]
            newest_sources = list(
                seqs.select(seqs.source, seqs.last_seq)
                .order_by(seqs.seen_at.desc(), seqs.source.desc())
                .limit(max(limit_sources, 0))
                .tuples()
            )
        newest_first.reverse()
        newest_sources.reverse()
        return newest_first, dict(newest_sources)

    def record(self, ids: Iterable[str], last_seq: Mapping[str, int]) -> None:
        """Remember processed ids (already known ones are ignored) and sources' last seqs.

        Each source given is stamped with the clock's time (``seen_at``), which orders the
        sources for ``load_state`` and ``prune``.
        """
        now = self._clock()
        id_rows = [(event_id, now) for event_id in dict.fromkeys(ids)]
        seq_rows = [(source, seq, now) for source, seq in last_seq.items()]
        with self._write():
            insert_rows(self._db, "processed_events", ("event_id", "seen_at"), id_rows,
                        'ON CONFLICT ("event_id") DO NOTHING')
            insert_rows(self._db, "source_seqs", ("source", "last_seq", "seen_at"), seq_rows,
                        'ON CONFLICT ("source") DO UPDATE SET "last_seq" = excluded."last_seq", '
                        '"seen_at" = excluded."seen_at"')

    def prune(self, keep: int, keep_sources: int = DEFAULT_KEEP_SOURCES) -> int:
        """Forget all but the newest ``keep`` ids and ``keep_sources`` sources; returns the rows forgotten.

        The ingress calls it every few thousand changes, so it costs an index lookup plus the
        rows it deletes (never a scan of the kept ones). Where the database skipped ids
        (PostgreSQL's sequence advances on a refused duplicate) slightly fewer are kept.
        Sources stored in the same millisecond are ordered by name (the database's collation),
        so at the boundary which of them is kept is arbitrary.
        """
        seen, seqs = self._m.ProcessedEvent, self._m.SourceSeq
        with self._write():
            return self._prune_ids(seen, keep) + self._prune_sources(seqs, keep_sources)

    @staticmethod
    def _prune_ids(seen, keep: int) -> int:
        if keep <= 0:
            return seen.delete().execute()
        newest = seen.select(peewee.fn.MAX(seen.id)).scalar()
        if newest is None:
            return 0
        return seen.delete().where(seen.id <= newest - keep).execute()

    @staticmethod
    def _prune_sources(seqs, keep: int) -> int:
        if keep <= 0:
            return seqs.delete().execute()
        # The newest source not kept; it and every older one go.
        first_dropped = (seqs.select(seqs.seen_at, seqs.source)
                         .order_by(seqs.seen_at.desc(), seqs.source.desc())
                         .offset(keep).limit(1).tuples().first())
        if first_dropped is None:
            return 0
        at, source = first_dropped
        return seqs.delete().where(
            (seqs.seen_at < at) | ((seqs.seen_at == at) & (seqs.source <= source))
        ).execute()
