"""A company merge and an assignment racing on committed PostgreSQL data, each on its own connection."""

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from companies.models import Company, CompanyMembership
from companies.services import company_merge, lead_changes_consume
from core.contracts import LeadChange
from ingest.models import Lead
from tests.accounts.factories import project_with_owner

pytestmark = pytest.mark.django_db(transaction=True)


def assign(project, lead):
    lead_changes_consume(changes=[LeadChange(kind="scored", project_id=project.id, lead_id=lead.id, old_score=0,
                                             new_score=0, old_stage="cold", new_stage="cold")])  # fmt: skip


def lock_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0]


def test_a_lead_assigned_while_its_company_is_merged_lands_in_the_survivor():
    project, _owner, _key = project_with_owner(name="Race")
    now = timezone.now()
    ann = Lead.objects.create(project=project, anonymous_id="ann", email="ann@acme.com", last_event_at=now)
    bob = Lead.objects.create(project=project, anonymous_id="bob", email="bob@globex.com", last_event_at=now)
    for lead in (ann, bob):
        assign(project, lead)
    acme, globex = Company.objects.get(domain="acme.com"), Company.objects.get(domain="globex.com")
    cy = Lead.objects.create(project=project, anonymous_id="cy", email="cy@acme.com", last_event_at=now)
    failures: list[BaseException] = []

    def assign_cy():
        try:
            assign(project, cy)
        except BaseException as exc:  # reported by the test below
            failures.append(exc)
        finally:
            connections.close_all()

    # given: a merge of acme into globex, not committed yet
    with transaction.atomic():
        company_merge(source=acme, target=globex)
        # when: cy, of acme.com, is assigned meanwhile on another connection
        other = threading.Thread(target=assign_cy)
        other.start()
        deadline = time.monotonic() + 10
        while lock_waiters() == 0 and other.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert other.is_alive(), "the assignment did not wait for the merge"
    other.join(timeout=10)

    # then: it waited for the merge, saw acme merged, and put cy in the survivor
    assert not failures and not other.is_alive()
    assert CompanyMembership.objects.get(lead=cy).company_id == globex.id
    assert set(CompanyMembership.objects.values_list("company_id", flat=True)) == {globex.id}
