"""Django's PostgreSQL backend, its psycopg pool checking connections with `core.dbcheck` (ENGINE `core.postgresql`).

Django builds the pool itself and passes it its own `check` (a round trip per checkout with
CONN_HEALTH_CHECKS, none without), so the check is swapped in once the pool exists. The swap
is the pool's private `_check`: tests/core/test_dbcheck.py fails if psycopg_pool changes it.
"""

from django.db.backends.postgresql import base

from core.dbcheck import connection_check


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):  # type: ignore[override]
        pool = super().pool
        if pool is not None and pool._check is not connection_check:
            pool._check = connection_check
        return pool
