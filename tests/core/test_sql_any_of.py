"""`__any_of`: one array parameter instead of one placeholder per value (core/sql.py)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ingest.models import Lead

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
