"""Small helpers for the few statements written by hand (bulk paths that the ORM makes slow)."""

from collections.abc import Iterable


def int_array(values: Iterable[int]) -> str:
    """A PostgreSQL array literal of integers, to pass as one parameter cast `::bigint[]`.

    psycopg adapts a Python list element by element in Python; a batch's thousands of ids
    cost it more than the statement takes. The literal is built from ints only (`int()`
    refuses anything else), so it carries no text from outside.
    """
    return "{" + ",".join(str(int(value)) for value in values) + "}"
