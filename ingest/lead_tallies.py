"""Per-project counts of live leads by stage and by matrix cell, and the sum of their scores, kept exact by
the writers.

The invariant, at every commit: summed over a project's `LeadTally` rows, each stage column is
the number of the project's live leads (`merged_into` empty) in that stage, each cell column
(`a1` … `d3`) the number in that fit x engagement cell (`matrix_cell`), and `score_total` the sum
of their `current_score`. Every write that changes that set, or a live lead's stage, cell or
score, calls `lead_tallies_move` in its own transaction with the values it read and wrote under
the lead's row lock, so a rolled-back or retried write adds nothing:

- ingest creates leads (cold, C3, score 0): it counts the rows its INSERT … ON CONFLICT DO NOTHING
  inserted, not the ones a concurrent request did;
- scoring saves evaluations (`evaluations_save`: batch scoring, refolds, re-score, decay, the
  survivor's fold in a merge): one call per save, whatever the number of leads;
- a merge takes its source out of the live set; an erasure deletes a live lead;
- anything else (the admin's deletes, a new primary model) recounts the project with `lead_tallies_rebuild`.

A call adds one delta row per project, in one statement, to the row `(project, slot)` of its
database session's slot (backend pid modulo SLOTS): concurrent writers of one project (scoring
workers, web processes) mostly write different rows and do not queue on one hot row; readers
sum at most SLOTS rows. Projects go in ascending order. A transaction that also takes a
project's rollup lock (`ingest.rollups`) takes it before its tally rows (scoring and merges
mark events before they save leads; an erasure subtracts rollups first), so the two cannot
deadlock. SQLite has one writer at a time: one slot.
"""

from collections import defaultdict
from collections.abc import Iterable
from typing import NamedTuple

from django.db import connection, transaction
from django.db.models import Count, Sum

from accounts.selectors import project_ids as all_project_ids

from .models import Lead, LeadTally

SLOTS = 16
STAGES: tuple[str, ...] = tuple(Lead.Stage.values)  # LeadTally has a column of each name
# the matrix cells A1 … D3 (scoring.engine.MATRIX_CELLS; ingest sits below scoring): LeadTally's a1 … d3
CELLS: tuple[str, ...] = tuple(f"{grade}{tier}" for grade in "ABCD" for tier in (1, 2, 3))
CELL_COLUMNS: tuple[str, ...] = tuple(cell.lower() for cell in CELLS)
COLUMNS = (*STAGES, *CELL_COLUMNS, "score_total")


class LeadMove(NamedTuple):
    """A lead's place in the tallies before and after a write: (stage, score, matrix cell), or None when not live."""

    project_id: int
    old: tuple[str, int, str] | None
    new: tuple[str, int, str] | None


def _deltas(moves: Iterable[LeadMove]) -> dict[int, list[int]]:
    """Per project, the change of each of COLUMNS; projects whose columns all cancel out are left out."""
    deltas: dict[int, list[int]] = defaultdict(lambda: [0] * len(COLUMNS))
    for project_id, old, new in moves:
        if old == new:
            continue
        row = deltas[project_id]
        for place, sign in ((old, -1), (new, 1)):
            if place is not None:
                stage, score, cell = place
                row[STAGES.index(stage)] += sign
                row[len(STAGES) + CELLS.index(cell)] += sign
                row[-1] += sign * score
    return {project_id: row for project_id, row in deltas.items() if any(row)}


def _slot() -> int:
    if connection.vendor != "postgresql":
        return 0
    connection.ensure_connection()
    return connection.connection.info.backend_pid % SLOTS


def lead_tallies_move(*, moves: Iterable[LeadMove]) -> None:
    """Add the moves' deltas to the projects' tallies, in one statement (inside the writer's transaction)."""
    deltas = _deltas(moves)
    if not deltas:
        return
    qn = connection.ops.quote_name
    meta = LeadTally._meta
    table = qn(meta.db_table)
    column_of = {field.name: str(field.column) for field in meta.concrete_fields}
    project, slot, *columns = (qn(column_of[name]) for name in ("project", "slot", *COLUMNS))
    additions = ", ".join(f"{column} = {table}.{column} + excluded.{column}" for column in columns)
    values = ", ".join(["%s"] * (len(columns) + 2))
    # Only quoted model metadata is interpolated; the values are parameters. One row per project,
    # in ascending order (ON CONFLICT locks the rows in that order).
    sql = (
        f"INSERT INTO {table} ({project}, {slot}, {', '.join(columns)}) VALUES ({values}) "  # noqa: S608
        f"ON CONFLICT ({project}, {slot}) DO UPDATE SET {additions}"
    )
    with transaction.atomic(savepoint=False):
        session_slot = _slot()
        with connection.cursor() as cursor:
            cursor.executemany(sql, [(pid, session_slot, *row) for pid, row in sorted(deltas.items())])


def lead_tallies(*, project_id: int) -> dict[str, int]:
    """The project's live leads per stage and per cell (every column present) and `score_total`, from its few
    tally rows."""
    sums = LeadTally.objects.filter(project_id=project_id).aggregate(**{column: Sum(column) for column in COLUMNS})
    return {column: sums[column] or 0 for column in COLUMNS}


def lead_tallies_counted(*, project_id: int) -> dict[str, int]:
    """What the tallies must hold, counted over the project's live leads (a scan: rebuilds and checks only)."""
    leads = Lead.objects.filter(project_id=project_id, merged_into__isnull=True)
    stages = dict(leads.values_list("lead_stage").annotate(n=Count("id")).order_by())
    cells = dict(leads.values_list("matrix_cell").annotate(n=Count("id")).order_by())
    score_total = leads.aggregate(total=Sum("current_score"))["total"] or 0
    return {**{stage: stages.get(stage, 0) for stage in STAGES},
            **{cell.lower(): cells.get(cell, 0) for cell in CELLS}, "score_total": score_total}  # fmt: skip


def lead_tallies_rebuild(*, project_id: int | None = None) -> int:
    """Recount the tallies of one project (or of every project) from its leads; return the projects recounted.

    The backfill (the migration runs it) and the repair after a write that bypassed the tallies.
    Safe while writers run: each project is recounted in a transaction that first locks the tally
    table against writes (PostgreSQL). A writer that added its delta before is waited for, and its
    leads are counted as committed; one that adds it after counts on top of a recount that could
    not see its uncommitted lead rows.
    """
    project_ids = all_project_ids() if project_id is None else [project_id]
    for pid in project_ids:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"LOCK TABLE {connection.ops.quote_name(LeadTally._meta.db_table)} IN SHARE ROW EXCLUSIVE MODE"
                    )
            LeadTally.objects.filter(project_id=pid).delete()
            counted = lead_tallies_counted(project_id=pid)
            if any(counted.values()):
                LeadTally.objects.create(project_id=pid, slot=0, **counted)
    return len(project_ids)


def lead_tallies_drift(*, project_id: int) -> dict[str, int]:
    """Stored minus counted, for the columns where they differ: empty when the project's tallies are exact."""
    stored, counted = lead_tallies(project_id=project_id), lead_tallies_counted(project_id=project_id)
    return {column: stored[column] - counted[column] for column in COLUMNS if stored[column] != counted[column]}
