"""What PostgreSQL's planner does with a statement our code sent: run it again under `EXPLAIN (ANALYZE, FORMAT
JSON)` and count the rows each plan node read. For statements whose cost must follow the batch, not the table."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection


@contextmanager
def statements_matching(fragment: str) -> Iterator[list[tuple[str, tuple]]]:
    """The (sql, params) of the statements this thread's connection runs that contain `fragment`."""
    seen: list[tuple[str, tuple]] = []

    def record(execute, sql, params, many, context):
        if fragment in sql:
            seen.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield seen


def rows_read(statement: tuple[str, tuple], relation: str) -> int:
    """Rows the statement's plan read from `relation`'s table and indexes, kept or filtered out (it runs again:
    call it inside the test's transaction)."""
    sql, params = statement
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    indexes = set()
    with connection.cursor() as cursor:
        indexes = {name for name, *_ in connection.introspection.get_constraints(cursor, relation).items()}

    def read(node: dict) -> int:
        of_relation = node.get("Relation Name") == relation or node.get("Index Name") in indexes
        counted = ("Actual Rows", "Rows Removed by Filter", "Rows Removed by Index Recheck")
        own = sum(node.get(key, 0) for key in counted) if of_relation else 0
        return own + sum(read(child) for child in node.get("Plans", []))

    return read(plan[0]["Plan"])
