"""The psycopg pool's check of a connection before it is handed out, without a round trip when none is needed.

`ConnectionPool.check_connection` sends an empty query to PostgreSQL every time a connection
leaves the pool: a round trip on every request of every view. An idle connection in autocommit
that LISTENs to nothing is sent nothing by the server, except when the server ends it (a
restart, a terminated backend, a crash: the kernel closes the socket) or reports a changed
setting. So the socket is polled without waiting: when it has nothing to read, the connection is
handed out as it is; when it has, the full check runs, which fails for a connection the server
ended (the pool then discards it and hands out another) and reads the report of a live one. A
network partition, which sends nothing, is found by the first statement instead (503 for ingest).
"""

import select

from psycopg import Connection
from psycopg_pool import ConnectionPool


def connection_check(conn: Connection) -> None:
    """Raise when the pooled connection is broken (see the module); a no-op poll when nothing was sent."""
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLPRI)
    if poller.poll(0):
        ConnectionPool.check_connection(conn)
