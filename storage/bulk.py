"""The fast write path: many rows in one statement round, on the raw DB-API cursor.

Peewee builds and converts every row it inserts (~40 µs a row); the run log and the event
de-duplication table write thousands of rows a second, so they bypass the ORM here. SQLite
gets ``executemany`` (the loop runs in C); psycopg2's ``executemany`` is one round trip per
row, so PostgreSQL gets multi-row ``VALUES`` statements instead. Call inside a transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

import peewee

PG_ROWS_PER_STATEMENT = 1000


def insert_rows(
    db: peewee.Database,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    conflict: str = "",
) -> None:
    """``INSERT INTO table (columns) VALUES ... conflict`` for every row (values in column order).

    ``conflict`` is an optional clause such as ``ON CONFLICT ("id") DO NOTHING`` (both SQLite
    and PostgreSQL understand it).
    """
    if not rows:
        return
    names = ", ".join(f'"{column}"' for column in columns)
    one_row = "(" + ", ".join([db.param] * len(columns)) + ")"
    head = f'INSERT INTO "{table}" ({names}) VALUES '
    tail = f" {conflict}" if conflict else ""
    cursor = db.cursor()
    if isinstance(db, peewee.SqliteDatabase):
        cursor.executemany(head + one_row + tail, rows)
        return
    for start in range(0, len(rows), PG_ROWS_PER_STATEMENT):
        chunk = rows[start : start + PG_ROWS_PER_STATEMENT]
        params = [value for row in chunk for value in row]
        cursor.execute(head + ", ".join([one_row] * len(chunk)) + tail, params)
