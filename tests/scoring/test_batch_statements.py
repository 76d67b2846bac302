"""What a scoring batch asks of PostgreSQL grows with the batch, not with the project's leads, even when the
planner's statistics are off (a new project growing between two autoanalyzes, a table never analyzed yet)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from ingest.models import Event, Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from scoring.services import leads_score
from tests.plans import rows_read, statements_matching

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC)


def leads(project, prefix: str, count: int) -> None:
    events_ingest(
        project_id=project.id,
        events=[CanonicalEvent(event_id=f"{prefix}-{i}", anonymous_id=f"{prefix}-{i}", name="page_view",
                               timestamp=NOW - timedelta(seconds=i)) for i in range(count)],
    )  # fmt: skip


def test_writing_a_batchs_scores_reads_its_leads_not_the_table(tenant, other_tenant):
    leads(other_tenant.project, "old", 5)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE ingest_lead")  # the statistics know five leads
    leads(tenant.project, "new", 2000)
    batch = list(Lead.objects.filter(project=tenant.project).order_by("id").values_list("id", flat=True)[:3])

    with statements_matching('UPDATE "ingest_lead" AS l SET') as statements:
        leads_score(lead_ids=batch)

    assert len(statements) == 1
    assert rows_read(statements[0], "ingest_lead") < 20  # the batch's 3 leads, not the 2,005
    assert all(lead.current_score > 0 for lead in Lead.objects.filter(id__in=batch))


def test_the_companies_read_of_a_batchs_lead_profiles_reads_its_leads_not_the_projects(tenant, other_tenant):
    from django.db import transaction

    from ingest.selectors import leads_profiles_locked

    leads(other_tenant.project, "old", 5)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE ingest_lead")
    leads(tenant.project, "new", 2000)
    batch = list(Lead.objects.filter(project=tenant.project).order_by("id").values_list("id", flat=True)[:3])
    other = Lead.objects.filter(project=other_tenant.project).values_list("id", flat=True)[0]

    with transaction.atomic(), statements_matching("FOR KEY SHARE") as statements:
        locked = leads_profiles_locked(project_id=tenant.project.id, lead_ids=[*batch, other])

    assert sorted(locked.profiles) == batch  # another project's lead is not among them
    assert rows_read(statements[0], "ingest_lead") < 20


@pytest.mark.django_db(transaction=True)
def test_reading_a_batchs_pending_events_reads_them_not_the_leads_history(tenant):
    """A lead with a long scored history (600 events) and two new events: the batch reads the two (the partial index
    of pending events, `event_pending_idx`), not the history before them (the lead's index, filtering out scored
    events) nor the whole backlog of every lead (the backlog's index)."""
    history = [CanonicalEvent(event_id=f"old-{i}", anonymous_id="busy", name="page_view",
                              timestamp=NOW - timedelta(hours=1, seconds=i)) for i in range(600)]  # fmt: skip
    events_ingest(project_id=tenant.project.id, events=history)
    busy = Lead.objects.get(project=tenant.project, anonymous_id="busy")
    leads_score(lead_ids=[busy.id])
    leads(tenant.project, "backlog", 200)  # other leads' unscored events
    events_ingest(
        project_id=tenant.project.id,
        events=[
            CanonicalEvent(event_id=f"new-{i}", anonymous_id="busy", name="page_view", timestamp=NOW) for i in (1, 2)
        ],
    )
    with connection.cursor() as cursor:
        # as autovacuum leaves the table (the suite's server runs without it, and the indexes carry every earlier
        # test's dead entries, which sway the planner's choice between them)
        cursor.execute("VACUUM ANALYZE ingest_event")

    with statements_matching("CROSS JOIN LATERAL") as statements:
        leads_score(lead_ids=[busy.id])

    assert len(statements) == 1
    assert rows_read(statements[0], "ingest_event") < 20  # the 2 new events, not 600 scored ones or 200 others'
    assert not Event.objects.filter(lead=busy, processed_at__isnull=True).exists()
