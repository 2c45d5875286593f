"""Where an engine under benchmark keeps its data: a fresh SQLite file, or a fresh PostgreSQL schema.

``brokerflow bench --db postgresql://…`` measures the engine on PostgreSQL (the store for more
than a couple of shards, and for ``--cluster``): each engine the bench starts gets a schema of
its own on that server (``search_path`` through libpq's ``options``), dropped when the bench ends.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["BenchDatabases"]


class BenchDatabases:
    """Hands out a fresh database URL per engine; ``close`` drops the PostgreSQL schemas made."""

    def __init__(self, server_url: str | None = None) -> None:
        if server_url is not None and not server_url.startswith(("postgres://", "postgresql://")):
            raise ValueError(f"--db takes a PostgreSQL URL (the default is a fresh SQLite file), got {server_url!r}")
        self.server_url = server_url
        self._schemas: list[str] = []

    @property
    def backend(self) -> str:
        return "sqlite" if self.server_url is None else "postgresql"

    def url(self, folder: str, name: str) -> str:
        """A database nobody used: ``<folder>/<name>.db``, or a new schema on the server."""
        if self.server_url is None:
            return f"sqlite:///{Path(folder) / f'{name}.db'}"
        schema = f"bench_{name.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
        with self._connection() as conn, conn.cursor() as cur:
            cur.execute(f'CREATE SCHEMA "{schema}"')
        self._schemas.append(schema)
        parts = urlsplit(self.server_url)
        query = dict(parse_qsl(parts.query))
        query["options"] = f"{query.get('options', '')} -csearch_path={schema}".strip()
        return urlunsplit(parts._replace(query=urlencode(query)))

    def close(self) -> None:
        if not self._schemas:
            return
        with self._connection() as conn, conn.cursor() as cur:
            for schema in self._schemas:
                cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        self._schemas.clear()

    @contextlib.contextmanager
    def _connection(self) -> Iterator[object]:
        import psycopg2  # the [postgres] extra: only a PostgreSQL bench needs it

        conn = psycopg2.connect(self.server_url)
        conn.autocommit = True
        try:
            yield conn
        finally:
            conn.close()
