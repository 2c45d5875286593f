"""The fast write path: many rows per statement, on the raw DB-API cursor.

Peewee builds and converts every row it inserts (~40 µs a row); the run log, process states
and the event de-duplication table write thousands of rows a second, so they bypass the ORM.

Both backends get multi-row ``VALUES`` statements. On SQLite, ``executemany`` would release
and re-acquire the GIL around every row's ``sqlite3_step``; next to the engine's busy threads
each re-acquisition waits up to a switch interval, and a 1000-row batch took seconds instead
of milliseconds. A statement of 512 rows releases it once. Chunks are powers of two, so a
table has at most ten statement texts and each stays in the connection's statement cache.
(One ``INSERT ... SELECT`` over ``json_each`` of the batch as JSON text releases the GIL once
too, but SQLite's JSON parsing cost twice the CPU of these statements, and JSON cannot carry
every value a driver binds: NaN, NUL characters, bytes.)

psycopg2's ``executemany`` is one round trip per row; PostgreSQL gets 1000 rows a statement.
Call inside a transaction.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable, Collection, Sequence
from itertools import chain

import peewee

from brokerflow.storage.models import dumps

PG_ROWS_PER_STATEMENT = 1000
SQLITE_MAX_ROWS_PER_STATEMENT = 512  # a power of two
SQLITE_DEFAULT_VARIABLES = 999  # the limit of SQLite before 3.32, when the driver cannot tell


def insert_rows(
    db: peewee.Database,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    conflict: str = "",
    json_columns: Collection[str] = (),
) -> None:
    """``INSERT INTO table (columns) VALUES ... conflict`` for every row (values in column order).

    ``conflict`` is an optional clause such as ``ON CONFLICT ("id") DO NOTHING`` (both SQLite
    and PostgreSQL understand it). ``json_columns`` hold documents (lists, maps) stored as
    their JSON text; a document JSON cannot encode raises ``TypeError`` or ``ValueError``
    before anything is written. Rows are inserted in the order given.
    """
    if not rows:
        return
    columns = tuple(columns)
    rows = encode_documents(rows, columns, json_columns)
    cursor = db.cursor()
    if isinstance(db, peewee.SqliteDatabase):
        size, start, end = _sqlite_rows_per_statement(db, len(columns)), 0, len(rows)
        while start < end:
            while size > end - start:
                size //= 2
            chunk = rows[start : start + size]
            cursor.execute(_values_sql(db.param, table, columns, conflict, size), list(chain.from_iterable(chunk)))
            start += size
        return
    for start in range(0, len(rows), PG_ROWS_PER_STATEMENT):
        chunk = rows[start : start + PG_ROWS_PER_STATEMENT]
        cursor.execute(_values_sql(db.param, table, columns, conflict, len(chunk)), list(chain.from_iterable(chunk)))


def _sqlite_rows_per_statement(db: peewee.SqliteDatabase, width: int) -> int:
    """The largest power of two of rows, up to 512, whose values SQLite accepts in one statement."""
    try:
        variables = db.connection().getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    except AttributeError:  # Python before 3.11
        variables = SQLITE_DEFAULT_VARIABLES
    size = SQLITE_MAX_ROWS_PER_STATEMENT
    while size > 1 and size * width > variables:
        size //= 2
    return size


def encode_documents(rows: Sequence[Sequence[object]], columns: Sequence[str],
                     json_columns: Collection[str]) -> Sequence[Sequence[object]]:
    """Rows with their document columns as JSON text (each document encoded once).

    A repository may call it before its write block, so the write lock is not held while
    Python encodes (``insert_rows`` leaves rows without documents as they are).
    """
    positions = [i for i, column in enumerate(columns) if column in json_columns]
    if not positions:
        return rows
    encoded = []
    for row in rows:
        values = list(row)
        for i in positions:
            if values[i] is not None:
                values[i] = _encode(values[i])
        encoded.append(values)
    return encoded


def _not_json(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _document_encoder() -> Callable[[object], str]:
    """``models.dumps`` without its per-call costs: the C encoder built once, no cycle bookkeeping.

    ``JSONEncoder.encode`` builds a C encoder on every call and tracks every container to
    detect cycles, about a third of the time of a run's actions. A cycle still ends in
    ``RecursionError``; ``dumps`` then names it (``ValueError``). The text is ``dumps``'s.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    try:
        chunks = make(None, _not_json, json.encoder.encode_basestring, None, ":", ",", False, False, True)
        if "".join(chunks([{"a": 1.5, "é": [None, True]}], 0)) != dumps([{"a": 1.5, "é": [None, True]}]):
            raise TypeError("a different text")
    except TypeError:  # no C encoder here, or another signature
        return dumps

    def encode(value: object) -> str:
        try:
            return "".join(chunks(value, 0))
        except RecursionError:
            return dumps(value)

    return encode


_encode = _document_encoder()


@functools.lru_cache(maxsize=128)
def _values_sql(param: str, table: str, columns: tuple[str, ...], conflict: str, count: int) -> str:
    names = ", ".join(f'"{column}"' for column in columns)
    one_row = "(" + ", ".join([param] * len(columns)) + ")"
    tail = f" {conflict}" if conflict else ""
    return f'INSERT INTO "{table}" ({names}) VALUES ' + ", ".join([one_row] * count) + tail
