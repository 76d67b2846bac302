"""`__any_of`: one array parameter instead of one placeholder per value (core/sql.py)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.sql import ids_in
from ingest.models import Lead
from scoring.services.batch import leads_claim

pytestmark = pytest.mark.django_db


def test_any_of_matches_what_in_matches_with_one_parameter(tenant):
    leads = [Lead.objects.create(project=tenant.project, anonymous_id=f"a{i}") for i in range(5)]
    ids = [lead.id for lead in leads[:3]]
    queryset = Lead.objects.filter(project=tenant.project)

    with CaptureQueriesContext(connection) as queries:
        assert sorted(queryset.filter(id__any_of=ids).values_list("id", flat=True)) == ids
    assert "= ANY(" in queries.captured_queries[0]["sql"] and "IN (" not in queries.captured_queries[0]["sql"]
    assert sorted(queryset.filter(anonymous_id__any_of=["a1", "a4", "zz"]).values_list("anonymous_id", flat=True)) == [
        "a1", "a4",
    ]  # fmt: skip
    assert not queryset.filter(id__any_of=[]).exists()
    assert queryset.exclude(id__any_of=ids).count() == 2


def test_the_scoring_claim_passes_a_batchs_lead_ids_as_one_array(tenant):
    """The hand-written statements of every scoring batch: one parameter for 200 leads, not 200."""

    leads = [Lead.objects.create(project=tenant.project, anonymous_id=f"b{i}") for i in range(200)]
    ids = [lead.id for lead in leads]
    with CaptureQueriesContext(connection) as queries:
        claimed = leads_claim(lead_ids=ids[::-1])
    assert [lead.id for lead in claimed] == ids
    (claim,) = queries.captured_queries
    assert "= ANY(" in claim["sql"] and "IN (" not in claim["sql"] and "SKIP LOCKED" in claim["sql"]


def test_ids_in_elsewhere_is_in():

    assert ids_in('"id"', [3, 1], "sqlite") == ('"id" IN (%s, %s)', [3, 1])
    assert ids_in('"id"', [3, 1], "postgresql") == ('"id" = ANY(%s::bigint[])', ["{3,1}"])
