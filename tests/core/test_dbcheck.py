"""The psycopg pool's check (`core.dbcheck`) against the real PostgreSQL: no round trip for a live idle
connection, and a connection the server ended is never handed out."""

import time

import psycopg
import pytest
from django.conf import settings
from psycopg_pool import ConnectionPool

from core.dbcheck import connection_check

pytestmark = pytest.mark.skipif(not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
                                reason="PostgreSQL's pool only")  # fmt: skip


def conninfo() -> str:
    db = settings.DATABASES["default"]
    return psycopg.conninfo.make_conninfo(
        host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], password=db["PASSWORD"] or None, dbname="postgres"
    )


@pytest.fixture
def pool():
    # as Django opens its pool: connections in autocommit (it sets its own mode per use)
    kwargs = {"autocommit": True}
    with ConnectionPool(conninfo(), kwargs=kwargs, min_size=1, max_size=1, check=connection_check, open=True) as pool:
        pool.wait()
        yield pool


def last_statement(pid: int) -> str:
    with psycopg.connect(conninfo(), autocommit=True) as other:
        return other.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()[0]


def test_a_live_idle_connection_is_handed_out_without_a_round_trip(pool):
    with pool.connection() as conn:
        pid = conn.info.backend_pid
        conn.execute("SELECT 'the last statement'")
    with pool.connection() as conn:  # checked on the way out
        assert conn.info.backend_pid == pid
        # Django's check (`ConnectionPool.check_connection`) would have sent an empty query: the last one shown
        assert last_statement(pid) == "SELECT 'the last statement'"
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_connection_the_server_ended_is_replaced_not_handed_out(pool):
    with pool.connection() as conn:
        pid = conn.info.backend_pid
    with psycopg.connect(conninfo(), autocommit=True) as other:
        assert other.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
        deadline = time.monotonic() + 10
        while other.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
            assert time.monotonic() < deadline, "the backend did not end"
            time.sleep(0.05)
    with pool.connection() as conn:
        assert conn.info.backend_pid != pid
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.django_db(transaction=True)
def test_djangos_pool_checks_with_it():
    from django.db import connection

    connection.close()
    pool = connection.pool
    assert pool._check is connection_check  # our backend swapped it in (`core.postgresql`)
    for _ in range(3):
        with connection.cursor() as cursor:
            # Django's check (`ConnectionPool.check_connection`) sends an empty query as the connection leaves
            assert last_statement(connection.connection.info.backend_pid) != ""
            cursor.execute("SELECT 'through Django'")
        connection.close()  # back to the pool
