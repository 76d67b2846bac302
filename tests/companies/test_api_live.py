"""The companies API with real Celery workers: a roll-up settings change on a big project is recomputed by them."""

import pytest
from django.db import connection
from django.utils import timezone

from companies import services
from companies.models import CompanyScore
from companies.services import lead_changes_consume
from core.contracts import LeadChange
from ingest.models import Lead
from tests.accounts.factories import project_with_owner
from tests.conftest import client_for
from tests.live import wait_until

pytestmark = pytest.mark.live


def test_a_settings_change_past_the_inline_limit_is_recomputed_by_the_workers(live_pipeline, monkeypatch):
    project, owner, _key = project_with_owner(name="Companies settings live")
    now = timezone.now()
    leads = [
        Lead.objects.create(project=project, anonymous_id=f"p{i}", email=f"p{i}@firm{i}-corp.com",
                            current_score=20 + i, lead_stage="warm", last_event_at=now)
        for i in range(5)
    ]  # fmt: skip
    lead_changes_consume(
        changes=[LeadChange(kind="scored", project_id=project.id, lead_id=lead.id, old_score=0, new_score=0,
                            old_stage="cold", new_stage="cold") for lead in leads]
    )  # fmt: skip
    assert sorted(CompanyScore.objects.values_list("score", flat=True)) == [30, 31, 32, 33, 34]  # 20 + i + 10
    monkeypatch.setattr(services, "RECOMPUTE_INLINE_LIMIT", 2)  # this (web) process's: 5 companies are "many"

    body = {"topN": 1, "breadthPoints": 0, "breadthCap": 0, "windowDays": 30,
            "fitRules": [{"points": 7, "conditions": [{"path": "plan", "op": "not_exists"}]}]}  # fmt: skip
    try:
        response = client_for(owner).put("/api/companies/settings", body, format="json")
    finally:
        connection.close()
    assert response.status_code == 200, response.content

    def recomputed():
        return sorted(CompanyScore.objects.values_list("score", flat=True)) == [27, 28, 29, 30, 31]  # 20 + i + 7

    wait_until(recomputed, message="the workers' recompute of the project's companies")
    assert list(CompanyScore.objects.values_list("breakdown__fitApplied", flat=True)) == [[[1, 7]]] * 5
