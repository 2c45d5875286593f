"""A throw-away PostgreSQL schema per test, so contract tests never see each other's rows."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


@contextlib.contextmanager
def fresh_schema_url(url: str) -> Iterator[str]:
    import psycopg2

    schema = f"t_{uuid.uuid4().hex[:12]}"
    parts = urlsplit(url)
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE SCHEMA "{schema}"')
        # libpq's "options" sets search_path for the session; playhouse.db_url passes the query
        # parameter through to psycopg2.connect unchanged (tests/storage/test_db.py checks it).
        query = dict(parse_qsl(parts.query))
        query["options"] = f"{query.get('options', '')} -csearch_path={schema}".strip()
        yield urlunsplit(parts._replace(query=urlencode(query)))
    finally:
        with conn.cursor() as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.close()
