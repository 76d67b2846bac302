"""Small helpers for the few statements written by hand (bulk paths that the ORM makes slow)."""

from collections.abc import Iterable
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.db.models import Field, ForeignObject, Lookup


def int_array(values: Iterable[int]) -> str:
    """A PostgreSQL array literal of integers, to pass as one parameter cast `::bigint[]`.

    psycopg adapts a Python list element by element in Python; a batch's thousands of ids
    cost it more than the statement takes. The literal is built from ints only (`int()`
    refuses anything else), so it carries no text from outside.
    """
    return "{" + ",".join(str(int(value)) for value in values) + "}"


def ids_in(column: str, values: Iterable[int], vendor: str) -> tuple[str, list[Any]]:
    """`column` among the integer ids, for a hand-written statement: (condition, its parameters).

    PostgreSQL: `= ANY(%s::bigint[])` with one array literal (`int_array`); elsewhere `IN (%s, …)`.
    """
    if vendor == "postgresql":
        return f"{column} = ANY(%s::bigint[])", [int_array(values)]
    values = [int(value) for value in values]
    return f"{column} IN ({', '.join(['%s'] * len(values))})", values


def prepared_cursor(connection: BaseDatabaseWrapper) -> CursorWrapper:
    """A cursor of `connection` (PostgreSQL, psycopg 3) whose statements psycopg binds server-side and, once one
    has run a few times on the connection (`DATABASE_PREPARED_STATEMENTS`), prepares: PostgreSQL then parses and
    plans it once per connection instead of at every execution.

    For the statements a request runs every time (a single event's INSERT): parsing and planning them cost
    PostgreSQL more CPU than running them. Django's own cursors bind client-side and never prepare.
    """
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.ensure_connection()
    return connection._prepare_cursor(ServerBindingCursor(connection.connection))  # type: ignore[attr-defined,call-arg]


class AnyOf(Lookup):
    """`field__any_of=<ids>`: `field = ANY(<one array>)` on PostgreSQL, `IN (...)` elsewhere.

    A batch's `__in` of thousands of ids is one placeholder per id, each spliced into the statement by
    psycopg in Python; this passes the ids as one array literal (as `int_array`), or strings as one array.
    Pass a set (or any iterable): Django walks a list's items one by one before the lookup sees them.
    """

    lookup_name = "any_of"
    prepare_rhs = False

    def __init__(self, lhs: Any, rhs: Any) -> None:
        # A set, not a list: Django walks a list's (or tuple's) items one by one looking for expressions.
        super().__init__(lhs, frozenset(rhs))

    def get_prep_lookup(self) -> list[Any]:
        return sorted(self.rhs)

    def as_sql(self, compiler: Any, connection: Any) -> Any:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values = self.rhs
        if not values:
            return "1 = 0", ()
        if connection.vendor == "postgresql":
            if all(type(value) is int for value in values):  # so their text is digits only
                return f"{lhs} = ANY(%s::bigint[])", (*lhs_params, "{" + ",".join(map(str, values)) + "}")
            return f"{lhs} = ANY(%s::text[])", (*lhs_params, [str(value) for value in values])
        return f"{lhs} IN ({', '.join(['%s'] * len(values))})", (*lhs_params, *values)


def lookups_register() -> None:
    """Make `__any_of` available on every field (from `CoreConfig.ready`)."""
    Field.register_lookup(AnyOf)
    ForeignObject.register_lookup(AnyOf)
