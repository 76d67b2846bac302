"""Per-project lead tallies: equal to a count of the live leads after every writer, per project."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Count, Sum
from django.utils import timezone

from ingest.lead_tallies import (
    CELL_COLUMNS,
    CELLS,
    COLUMNS,
    STAGES,
    LeadMove,
    lead_tallies,
    lead_tallies_drift,
    lead_tallies_move,
    lead_tallies_rebuild,
)
from ingest.models import Lead, LeadTally
from scoring import engine
from scoring.models import RescoreJob, ScoringRule
from scoring.services import lead_erase, rule_update
from scoring.services.batch import leads_decay
from scoring.services.rules import rescore_job_run
from tests.ingest.test_rollups import NOW, score, send

pytestmark = pytest.mark.django_db


def counted(project) -> dict[str, int]:
    """The GROUP BYs the tallies replace: live leads per stage and per matrix cell, and their score total."""
    live = Lead.objects.filter(project=project, merged_into__isnull=True)
    stages = dict(live.values_list("lead_stage").annotate(n=Count("id")).order_by())
    cells = {cell.lower(): n for cell, n in live.values_list("matrix_cell").annotate(n=Count("id")).order_by()}
    return {**dict.fromkeys(STAGES, 0), **stages, **dict.fromkeys(CELL_COLUMNS, 0), **cells,
            "score_total": live.aggregate(s=Sum("current_score"))["s"] or 0}  # fmt: skip


def assert_exact(*projects) -> None:
    for project in projects:
        assert lead_tallies(project_id=project.id) == counted(project), project.name
        assert lead_tallies_drift(project_id=project.id) == {}


def test_the_tally_columns_are_the_lead_stages_and_the_matrix_cells():
    fields = {field.name for field in LeadTally._meta.concrete_fields}
    assert set(Lead.Stage.values) <= fields and set(CELL_COLUMNS) <= fields
    assert CELLS == engine.MATRIX_CELLS and tuple(cell.lower() for cell in engine.MATRIX_CELLS) == CELL_COLUMNS
    assert (*Lead.Stage.values, *CELL_COLUMNS, "score_total") == COLUMNS


def test_every_writer_keeps_the_tallies_equal_to_a_count_of_the_live_leads(tenant, other_tenant):
    # ingest creates leads: cold, score 0 (another project's leads go to its own tallies)
    send(tenant.project, "q", ("q1", "demo_request", NOW - timedelta(hours=2)), ("q2", "signup", NOW))
    send(tenant.project, "h", ("h1", "demo_request", NOW))
    send(tenant.project, "w", ("w1", "signup", NOW))
    send(tenant.project, "c", ("c1", "page_view", NOW))
    send(tenant.project, "crm", ("k1", "identify", NOW - timedelta(days=1)), type="identify", user_id="u-1")
    send(other_tenant.project, "o", ("o1", "demo_request", NOW), ("o2", "signup", NOW))
    assert lead_tallies(project_id=tenant.project.id) == {**dict.fromkeys(COLUMNS, 0), "cold": 5, "c3": 5}
    assert_exact(tenant.project, other_tenant.project)

    # a known lead's events create nothing more
    send(tenant.project, "c", ("c2", "page_view", NOW))
    assert lead_tallies(project_id=tenant.project.id)["cold"] == 5

    # scoring moves them between stages (and a second run, with nothing pending, moves nothing)
    score(tenant.project)
    score(other_tenant.project)
    scored = lead_tallies(project_id=tenant.project.id)
    assert scored == {**dict.fromkeys(COLUMNS, 0), "cold": 2, "warm": 1, "hot": 1, "qualified": 1,
                      "c1": 2, "c2": 1, "c3": 2, "score_total": 10 + 30 + 50 + 80}  # fmt: skip
    score(tenant.project)
    assert lead_tallies(project_id=tenant.project.id) == scored
    assert_exact(tenant.project, other_tenant.project)

    # a merge: the device identifies as the known user, and leaves the live leads for it
    send(tenant.project, "h", ("h2", "identify", NOW), type="identify", user_id="u-1")
    score(tenant.project)
    assert Lead.objects.get(project=tenant.project, anonymous_id="h").merged_into is not None
    assert sum(lead_tallies(project_id=tenant.project.id)[stage] for stage in STAGES) == 4
    assert_exact(tenant.project, other_tenant.project)

    # decay, materialised twenty idle days on
    lead_ids = list(Lead.objects.filter(project=tenant.project).values_list("id", flat=True))
    assert leads_decay(lead_ids=lead_ids, now=timezone.now() + timedelta(days=20)) > 0
    assert_exact(tenant.project, other_tenant.project)

    # a rule change re-scores every live lead
    rule = ScoringRule.objects.get(project=tenant.project, event_type="page_view")
    rule_update(rule=rule, data={"points": 40})
    job = RescoreJob.objects.get(project=tenant.project)
    for index in range(job.slice_count):  # every slice: which one holds lead c depends on its id
        while rescore_job_run(job_id=job.id, slice_index=index, chunk=2):
            pass
    assert Lead.objects.get(project=tenant.project, anonymous_id="c").current_score >= 80
    assert_exact(tenant.project, other_tenant.project)

    # erasure takes the lead out (and the device merged into it was in no tally)
    lead_erase(lead=Lead.objects.get(project=tenant.project, anonymous_id="crm"))
    assert sum(lead_tallies(project_id=tenant.project.id)[stage] for stage in STAGES) == 3
    assert_exact(tenant.project, other_tenant.project)
    assert lead_tallies(project_id=other_tenant.project.id)["qualified"] == 1


def test_a_lead_created_twice_is_counted_once(tenant):
    # the second request's INSERT … ON CONFLICT DO NOTHING inserts nothing: it counts nothing
    send(tenant.project, "same", ("s1", "page_view", NOW))
    send(tenant.project, "same", ("s2", "page_view", NOW))
    Lead.objects.filter(project=tenant.project).delete()  # bypasses the tallies (the admin would rebuild)
    send(tenant.project, "same", ("s3", "page_view", NOW))

    assert lead_tallies(project_id=tenant.project.id)["cold"] == 2  # one stale, one new: not a recount
    lead_tallies_rebuild(project_id=tenant.project.id)
    assert lead_tallies(project_id=tenant.project.id)["cold"] == 1


def test_a_move_adds_one_row_of_deltas_per_project_to_the_sessions_slot(tenant, other_tenant):
    moves = [
        LeadMove(tenant.project.id, None, ("cold", 0, "C3")),
        LeadMove(tenant.project.id, ("cold", 0, "C3"), ("hot", 40, "A1")),
        LeadMove(tenant.project.id, ("warm", 20, "B2"), ("warm", 20, "B2")),  # no change: no delta
        LeadMove(other_tenant.project.id, ("qualified", 90, "D1"), None),
    ]

    lead_tallies_move(moves=moves)
    lead_tallies_move(moves=moves[2:3])  # nothing to add: no statement

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        slot = cursor.fetchone()[0] % 16
    rows = LeadTally.objects.order_by("project_id").values_list("project_id", "slot", *COLUMNS)
    assert list(rows) == [
        (tenant.project.id, slot, 0, 0, 1, 0, 1, *[0] * 11, 40),
        (other_tenant.project.id, slot, 0, 0, 0, -1, *[0] * 9, -1, 0, 0, -90),
    ]


def test_rebuild_recounts_what_the_migration_backfills(tenant, other_tenant):
    send(tenant.project, "a", ("a1", "demo_request", NOW))
    send(other_tenant.project, "b", ("b1", "signup", NOW))
    score(tenant.project)
    score(other_tenant.project)
    LeadTally.objects.filter(project=tenant.project).delete()
    LeadTally.objects.filter(project=other_tenant.project).update(warm=7)
    assert lead_tallies_drift(project_id=tenant.project.id) == {"hot": -1, "c1": -1, "score_total": -50}
    assert lead_tallies_drift(project_id=other_tenant.project.id) == {"warm": 6}
    with pytest.raises(CommandError):
        call_command("lead_tallies_rebuild", "--check")

    call_command("lead_tallies_rebuild")  # what migration 0005 runs: lead_tallies_rebuild()

    call_command("lead_tallies_rebuild", "--check")
    assert_exact(tenant.project, other_tenant.project)
    assert LeadTally.objects.filter(project=tenant.project).count() == 1


def test_deleting_leads_in_the_admin_recounts_their_project(tenant, admin_client):
    # given a survivor with a device merged into it
    send(tenant.project, "crm", ("k1", "identify", NOW), type="identify", user_id="u-1")
    send(tenant.project, "dev", ("d1", "demo_request", NOW))
    score(tenant.project)
    send(tenant.project, "dev", ("d2", "identify", NOW), type="identify", user_id="u-1")
    score(tenant.project)
    survivor = Lead.objects.get(project=tenant.project, anonymous_id="crm")
    assert Lead.objects.filter(merged_into=survivor).count() == 1

    # when the admin deletes the survivor (the device comes back to life, cold)
    response = admin_client.post(f"/admin/ingest/lead/{survivor.id}/delete/", {"post": "yes"})

    # then the tallies count the device, as a GROUP BY does
    assert response.status_code == 302
    assert_exact(tenant.project)
    assert lead_tallies(project_id=tenant.project.id)["cold"] == 1
