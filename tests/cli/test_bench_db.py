"""``brokerflow bench --db``: each engine under benchmark on a schema of its own, dropped at the end."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from brokerflow.app.benchdb import BenchDatabases
from brokerflow.storage.store import open_store
from tests.conftest import PG_ENV


def test_bench_refuses_a_db_that_is_not_postgresql_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "brokerflow", "bench", "--db", f"sqlite:///{tmp_path}/x.db"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"brokerflow bench: --db takes a PostgreSQL URL (the default is a fresh SQLite file), got "
        f"'sqlite:///{tmp_path}/x.db'"]


def test_without_db_each_engine_gets_a_sqlite_file_in_its_folder(tmp_path):
    databases = BenchDatabases()
    assert databases.backend == "sqlite"
    assert databases.url(str(tmp_path), "bench") == f"sqlite:///{tmp_path / 'bench.db'}"
    databases.close()


@pytest.mark.skipif(not os.environ.get(PG_ENV), reason=f"{PG_ENV} names no PostgreSQL server")
def test_each_engine_gets_a_fresh_postgresql_schema_dropped_at_the_end(tmp_path):
    import psycopg2

    databases = BenchDatabases(os.environ[PG_ENV])
    first, second = databases.url(str(tmp_path), "bench"), databases.url(str(tmp_path), "shards-2")
    assert first != second and databases.backend == "postgresql"
    for url in (first, second):
        store = open_store(url)  # migrates into the schema, as serve does
        try:
            assert store.rules.list() == []
        finally:
            store.close()
    schemas = [url.split("search_path%3D", 1)[1].split("&", 1)[0] for url in (first, second)]
    databases.close()
    conn = psycopg2.connect(os.environ[PG_ENV])
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM information_schema.schemata WHERE schema_name = ANY(%s)", (schemas,))
            assert cur.fetchone()[0] == 0
    finally:
        conn.close()
