"""A window rule through the whole pipeline: HTTP ingest → PostgreSQL → Redis → the shared Celery workers."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from ingest.models import Event, Lead
from scoring import engine
from scoring.models import ScoreHistory
from scoring.services import rule_create
from scoring.services.fold import facts, primary_model, project_rules
from tests.live import wait_until

pytestmark = pytest.mark.live


def send(body, *, key):
    try:
        return Client().post("/api/events", json.dumps(body), content_type="application/json", HTTP_X_API_KEY=key)
    finally:
        connection.close()


def visits(key, now, *days):
    for day in days:
        body = {"eventType": "pricing_seen", "leadId": "w", "eventId": f"v{day}",
                "timestamp": (now + timedelta(days=day)).isoformat()}  # fmt: skip
        assert send(body, key=key).status_code == 202


def test_a_window_rule_awards_through_the_workers_and_a_late_event_refolds(live_pipeline):
    from tests.accounts.factories import project_with_owner

    project, _owner, key = project_with_owner(name="Windows live")
    rule = rule_create(project=project, data={"name": "3 in 2 days", "event_type": "pricing_seen", "points": 20,
                                              "window_count": 3, "window_days": 2})  # fmt: skip
    now = timezone.now().replace(microsecond=0)

    def scored():
        return not Event.objects.filter(project=project, processed_at__isnull=True).exists()

    def lead():
        return Lead.objects.get(project=project, anonymous_id="w")

    # given two visits half a day apart: two in two days, no award
    visits(key, now, -6, -5.5)
    wait_until(scored, message="the first visits to be scored")
    assert lead().current_score == 0

    # when a late visit between them arrives: three in two days at the visit of day -5.5, which a refold awards
    visits(key, now, -5.8)
    wait_until(scored, message="the late visit to be scored")
    assert lead().current_score == 20

    # then a visit in the rest after that award gives nothing (though three fall in its two days); the third
    # in a later window does
    visits(key, now, -4, -3, -2.5)
    wait_until(scored, message="the later visits to be scored")
    final = lead()
    assert final.current_score == 40
    awarded = (
        ScoreHistory.objects.filter(lead=final, reason="rule", delta__gt=0)
        .order_by("occurred_at")
        .values_list("event__event_id", flat=True)
    )
    assert list(awarded) == ["v-5.5", "v-2.5"]
    # and the stored checkpoint is the pure fold of the whole log, window memory included
    rules, _ = project_rules(project)
    policy = engine.Policy()
    expected, _ = engine.fold([fact for _, fact in facts(Event.objects.filter(lead=final))], rules=rules, policy=policy)
    assert engine.FoldState.from_json(final.fold_state) == expected
    assert expected.windows[rule.id].awarded == now - timedelta(days=2.5)
    assert primary_model(project).version == 2
