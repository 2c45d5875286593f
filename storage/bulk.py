"""The fast write path: many rows in one statement, on the raw DB-API cursor.

Peewee builds and converts every row it inserts (~40 µs a row); the run log, notifications,
process states and the event de-duplication table write thousands of rows a second, so they
bypass the ORM here.

SQLite gets the whole batch as one JSON text parameter, unpacked by ``json_each`` in one
``INSERT ... SELECT``. ``executemany`` would release and re-acquire the GIL around every
row's ``sqlite3_step``; next to the engine's busy threads each re-acquisition waits up to a
switch interval, and a 1000-row batch took seconds instead of milliseconds. One statement
releases the GIL once. Text JSON cannot carry (NaN, a NUL character) and SQLite before 3.38
(no ``->>``) take ``executemany`` instead, which stores every value as it always did.

psycopg2's ``executemany`` is one round trip per row, so PostgreSQL gets multi-row ``VALUES``
statements. Call inside a transaction.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Collection, Sequence

import peewee

from storage.models import dumps

PG_ROWS_PER_STATEMENT = 1000
SQLITE_ROWS_PER_STATEMENT = 5000  # bounds the JSON text of a large backlog, not the speed
SQLITE_JSON = sqlite3.sqlite_version_info >= (3, 38, 0)

# NaN and infinities are no JSON to SQLite: such a batch takes the executemany path instead.
# No circular-reference bookkeeping (a quarter of the encoding time): rows are built by the
# repositories, and a cycle still ends in RecursionError, which takes the executemany path
# whose encoder names it.
_STRICT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False)
_NUL = "\\u0000"  # SQLite's JSON functions end a text at NUL: a batch holding one goes row by row


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
    their JSON text: the batch's JSON carries them as they are, so each is encoded once.
    Rows are inserted in the order given.
    """
    if not rows:
        return
    cursor = db.cursor()
    if isinstance(db, peewee.SqliteDatabase):
        if SQLITE_JSON:
            sql = _sqlite_json_sql(table, tuple(columns), conflict, tuple(json_columns))
            leftover = []
            for start in range(0, len(rows), SQLITE_ROWS_PER_STATEMENT):
                chunk = rows[start : start + SQLITE_ROWS_PER_STATEMENT]
                payload = _payload(chunk)
                if payload is None:
                    leftover.extend(chunk)
                else:
                    cursor.execute(sql, (payload,))
            rows = leftover
            if not rows:
                return
        encoded = _encode_documents(rows, columns, json_columns)
        cursor.executemany(_values_sql(db.param, table, tuple(columns), conflict, 1), encoded)
        return
    encoded = _encode_documents(rows, columns, json_columns)
    for start in range(0, len(encoded), PG_ROWS_PER_STATEMENT):
        chunk = encoded[start : start + PG_ROWS_PER_STATEMENT]
        params = [value for row in chunk for value in row]
        cursor.execute(_values_sql(db.param, table, tuple(columns), conflict, len(chunk)), params)


def _payload(rows: Sequence[Sequence[object]]) -> str | None:
    """The rows as one JSON array, or None when JSON cannot carry them faithfully to SQLite.

    None sends the rows to ``executemany``, which stores or refuses each value exactly as it
    always did (bytes as a BLOB, an object with the driver's error).
    """
    try:
        payload = _STRICT.encode(rows)
    except (TypeError, ValueError, RecursionError):  # not JSON, NaN / an infinity, or a cycle
        return None
    return None if _NUL in payload else payload


def _encode_documents(rows: Sequence[Sequence[object]], columns: Sequence[str],
                      json_columns: Collection[str]) -> Sequence[Sequence[object]]:
    """Rows with their document columns as JSON text, for a statement that binds each value."""
    if not json_columns:
        return rows
    positions = [i for i, column in enumerate(columns) if column in json_columns]
    encoded = []
    for row in rows:
        values = list(row)
        for i in positions:
            if values[i] is not None:
                values[i] = dumps(values[i])
        encoded.append(values)
    return encoded


@functools.lru_cache(maxsize=64)
def _sqlite_json_sql(table: str, columns: tuple[str, ...], conflict: str, json_columns: tuple[str, ...]) -> str:
    """``INSERT ... SELECT`` of each element of the JSON array parameter, in array order.

    ``->>`` gives a scalar as its SQL value (JSON true is 1); ``->`` gives a document as its
    JSON text. ``WHERE true`` keeps SQLite from reading the conflict clause's ``ON`` as a join.
    """
    names = ", ".join(f'"{column}"' for column in columns)
    values = ", ".join(f"nullif(value -> {i}, 'null')" if column in json_columns else f"value ->> {i}"
                       for i, column in enumerate(columns))
    tail = f" {conflict}" if conflict else ""
    return f'INSERT INTO "{table}" ({names}) SELECT {values} FROM json_each(?) WHERE true ORDER BY key{tail}'


@functools.lru_cache(maxsize=64)
def _values_sql(param: str, table: str, columns: tuple[str, ...], conflict: str, count: int) -> str:
    names = ", ".join(f'"{column}"' for column in columns)
    one_row = "(" + ", ".join([param] * len(columns)) + ")"
    tail = f" {conflict}" if conflict else ""
    return f'INSERT INTO "{table}" ({names}) VALUES ' + ", ".join([one_row] * count) + tail
