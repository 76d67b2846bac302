import json
from collections import Counter
from datetime import timedelta

import pytest
from django.db.models import Avg
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from ingest.lead_tallies import lead_tallies_rebuild
from ingest.models import Event, Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from scoring.models import ScoreHistory
from scoring.services import lead_erase
from scoring.services.fold import primary_model
from tests.scoring.factories import scored_lead

pytestmark = pytest.mark.django_db

STAGES = ("cold", "warm", "hot", "qualified")


@pytest.fixture
def leads(tenant, other_tenant):
    """Leads in every stage, one merged away, and a noisier other project that must never count."""
    rows = [
        scored_lead(tenant.project, "cold-1", "page_view"),
        scored_lead(tenant.project, "cold-2", "page_view", "page_view"),
        scored_lead(tenant.project, "warm-1", "signup"),
        scored_lead(tenant.project, "hot-1", "demo_request"),
        scored_lead(tenant.project, "q-1", "demo_request", "signup"),
        scored_lead(tenant.project, "q-2", "demo_request", "signup", "page_view"),
    ]
    merged = scored_lead(tenant.project, "merged-1", "demo_request", "signup")
    Lead.objects.filter(pk=merged.pk).update(merged_into=rows[0])  # merged away, its scores left as they were
    lead_tallies_rebuild(project_id=tenant.project.id)  # the repair for a write that bypasses the tallies
    for i in range(5):
        scored_lead(other_tenant.project, f"other-{i}", "demo_request", "signup", "page_view")
    return rows


def error_field(response) -> str:
    fields = response.json()["error"]["fields"]
    assert response.json()["error"]["code"] and len(fields) == 1
    return next(iter(fields))


def live_leads(project):
    return Lead.objects.filter(project=project, merged_into__isnull=True)


@pytest.mark.parametrize(
    "path",
    [
        "/api/leaderboard",
        "/api/leaderboard/by-stage",
        "/api/analytics/dashboard",
        "/api/events",
        "/api/leads/1/history",
    ],
)
def test_every_report_needs_a_token(path, tenant):
    response = APIClient().get(path)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_write_key_does_not_list_events(tenant):
    response = Client().get("/api/events", HTTP_X_API_KEY=tenant.write_key)

    assert response.status_code == 401


# Leaderboard


def test_leaderboard_ranks_live_leads_by_score(tenant, leads, django_assert_num_queries):
    expected = sorted(live_leads(tenant.project), key=lambda lead: (-lead.current_score, -lead.id))

    with django_assert_num_queries(6):  # user, membership, page, count (the lead tallies), the models, lead facets
        response = tenant.client.get("/api/leaderboard", {"limit": 4, "offset": 1})

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == len(expected) == 6
    assert [lead["id"] for lead in body["results"]] == [lead.id for lead in expected[1:5]]
    assert body["results"][0]["currentScore"] == expected[1].current_score
    assert {"anonymousId", "leadStage", "lastEventAt"} <= set(body["results"][0])


def test_leaderboard_defaults_to_ten(tenant):
    for i in range(12):
        scored_lead(tenant.project, f"lead-{i}", "page_view")

    body = tenant.client.get("/api/leaderboard").json()

    assert len(body["results"]) == 10 and body["count"] == 12


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "1.5"}, "offset"),
    ],
)
def test_leaderboard_rejects_bad_paging(params, field, tenant):
    response = tenant.client.get("/api/leaderboard", params)

    assert response.status_code == 400
    assert error_field(response) == field


def test_empty_paging_parameters_are_the_defaults(tenant):
    # an empty query parameter is the same as leaving it out, as the OpenAPI document says
    assert tenant.client.get("/api/leaderboard", {"limit": "", "offset": ""}).status_code == 200


def test_by_stage_counts_live_leads_of_the_project(tenant, leads, django_assert_num_queries):
    expected = Counter(live_leads(tenant.project).values_list("lead_stage", flat=True))

    with django_assert_num_queries(3) as queries:  # user, membership, the project's lead tallies
        response = tenant.client.get("/api/leaderboard/by-stage")
    assert not [query for query in queries.captured_queries if '"ingest_lead"' in query["sql"]]  # no lead scan

    assert response.status_code == 200
    assert response.json() == {stage: expected[stage] for stage in STAGES}
    assert sum(response.json().values()) == 6
    assert len([stage for stage in STAGES if expected[stage]]) >= 3  # the fixture spreads the stages


# Analytics


def test_dashboard_matches_independent_counts(tenant, leads, django_assert_num_queries):
    rows = list(live_leads(tenant.project))
    events = list(Event.objects.filter(project=tenant.project))
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)

    # user, membership, the lead tallies, events per day, by name, the newest timestamp, the top ten, the models,
    # the lead facets (companies: the top ten's companies)
    with django_assert_num_queries(9) as queries:
        response = tenant.client.get("/api/analytics/dashboard")
    # the leads table is read once, for ten rows (an index range, whatever the number of leads)
    lead_reads = [query["sql"] for query in queries.captured_queries if '"ingest_lead"' in query["sql"]]
    assert len(lead_reads) == 1 and lead_reads[0].endswith("LIMIT 10"), lead_reads

    assert response.status_code == 200
    body = response.json()
    assert body["totalLeads"] == len(rows) == 6
    assert body["qualifiedLeads"] == sum(lead.lead_stage == "qualified" for lead in rows)
    assert body["averageScore"] == round(sum(lead.current_score for lead in rows) / len(rows), 1)
    assert body["averageScore"] == round(live_leads(tenant.project).aggregate(a=Avg("current_score"))["a"], 1)
    assert body["eventsToday"] == sum(event.timestamp >= today for event in events)
    assert body["eventsByType"] == dict(Counter(event.name for event in events))
    assert body["stageDistribution"] == {stage: sum(lead.lead_stage == stage for lead in rows) for stage in STAGES}
    assert len(body["eventsPerDay"]) == 30
    assert sum(day["count"] for day in body["eventsPerDay"]) == len(events)
    assert body["eventsPerDay"][-1]["date"] == timezone.now().date().isoformat()
    ranked = sorted(rows, key=lambda lead: (-lead.current_score, -lead.id))
    assert [lead["id"] for lead in body["topLeads"]] == [lead.id for lead in ranked]
    assert body["lastEventAt"]


def test_dashboard_of_an_empty_project(tenant, other_tenant, leads):
    body = other_tenant.client.get("/api/analytics/dashboard").json()
    assert body["totalLeads"] == 5  # only its own leads

    for lead in live_leads(other_tenant.project):
        lead_erase(lead=lead)  # the service: it keeps the event counts exact (a bare delete would not)
    body = other_tenant.client.get("/api/analytics/dashboard").json()
    assert (body["totalLeads"], body["averageScore"], body["topLeads"], body["eventsByType"]) == (0, 0, [], {})


# Events


def ingest_at(project, anonymous_id, name, timestamp, event_id):
    events_ingest(
        project_id=project.id,
        events=[CanonicalEvent(event_id=event_id, name=name, anonymous_id=anonymous_id, timestamp=timestamp)],
    )


def walk(client, params):
    """Every item of every page, following `next` cursors."""
    seen, response = [], client.get("/api/events", params)
    while True:
        assert response.status_code == 200, response.content
        seen += response.json()["results"]
        if not response.json()["next"]:
            return seen
        response = client.get(response.json()["next"])


def test_cursor_pagination_walks_every_event_once_newest_first(tenant, leads, django_assert_num_queries):
    # events sharing a timestamp straddle page boundaries
    same = timezone.now() - timedelta(hours=1)
    for i in range(5):
        ingest_at(tenant.project, "tied", "page_view", same, f"tied-{i}")
    expected = list(Event.objects.filter(project=tenant.project).order_by("-timestamp", "-id"))

    with django_assert_num_queries(3):  # user, membership, page
        first = tenant.client.get("/api/events", {"pageSize": 3})
    seen = walk(tenant.client, {"pageSize": 3})

    assert len(first.json()["results"]) == 3 and first.json()["previous"] is None
    assert [item["eventId"] for item in seen] == [event.event_id for event in expected]
    assert len(seen) == len({item["eventId"] for item in seen}) == len(expected) > 3
    item, event = seen[0], expected[0]
    assert item == {
        "eventId": event.event_id,
        "eventType": event.name,
        "type": "track",
        "leadId": event.lead_id,
        "anonymousId": event.anonymous_id,
        "userId": "",
        "timestamp": item["timestamp"],
        "receivedAt": item["receivedAt"],
        "processedAt": item["processedAt"],
        "properties": {},
    }


def test_events_default_to_fifty_a_page_and_cap_the_page_size(tenant):
    now = timezone.now()
    for i in range(210):
        ingest_at(tenant.project, "busy", "page_view", now - timedelta(seconds=i), f"busy-{i}")

    default = tenant.client.get("/api/events").json()
    capped = tenant.client.get("/api/events", {"pageSize": 1000}).json()

    assert len(default["results"]) == 50
    assert len(capped["results"]) == 200


def test_events_filters(tenant, leads):
    now = timezone.now()
    ingest_at(tenant.project, "old", "signup", now - timedelta(days=10), "old-1")
    ingest_at(tenant.project, "old", "page_view", now - timedelta(days=5), "old-2")
    events = Event.objects.filter(project=tenant.project)
    hot = Lead.objects.get(project=tenant.project, anonymous_id="q-2")
    since, until = now - timedelta(days=7), now - timedelta(days=3)

    by_type = walk(tenant.client, {"eventType": "signup"})
    by_lead = walk(tenant.client, {"leadId": hot.id})
    window = walk(tenant.client, {"since": since.isoformat(), "until": until.isoformat()})
    naive = walk(tenant.client, {"since": (now - timedelta(days=7)).replace(tzinfo=None).isoformat()})

    assert {item["eventId"] for item in by_type} == set(events.filter(name="signup").values_list("event_id", flat=True))
    assert {item["eventType"] for item in by_type} == {"signup"}
    assert {item["eventId"] for item in by_lead} == set(events.filter(lead=hot).values_list("event_id", flat=True))
    assert len(by_lead) == 3
    assert [item["eventId"] for item in window] == ["old-2"]
    assert len(naive) == events.filter(timestamp__gte=since).count() == events.count() - 1


def test_events_never_show_another_project(tenant, other_tenant, leads):
    other_lead = Lead.objects.filter(project=other_tenant.project).first()
    assert other_lead is not None

    everything = walk(tenant.client, {"pageSize": 200})
    theirs = walk(tenant.client, {"leadId": other_lead.id})

    assert len(everything) == Event.objects.filter(project=tenant.project).count()
    assert not {item["eventId"] for item in everything} & set(
        Event.objects.filter(project=other_tenant.project).values_list("event_id", flat=True)
    )
    assert theirs == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-45T00:00:00Z"}, "until"),
        ({"leadId": "abc"}, "leadId"),
        ({"leadId": "-3"}, "leadId"),
        ({"leadId": "1" * 30}, "leadId"),
    ],
)
def test_events_reject_bad_filters(params, field, tenant):
    response = tenant.client.get("/api/events", params)

    assert response.status_code == 400
    assert error_field(response) == field


def test_ingest_post_still_queues_events(tenant):
    response = Client().post(
        "/api/events",
        json.dumps({"eventType": "signup", "leadId": "crm-9"}),
        content_type="application/json",
        HTTP_X_API_KEY=tenant.write_key,
    )

    assert response.status_code == 202
    listed = tenant.client.get("/api/events").json()["results"]
    assert [item["eventId"] for item in listed] == [response.json()["eventId"]]


def test_ingest_post_ignores_a_token_and_needs_the_write_key(tenant):
    response = tenant.client.post("/api/events", {"eventType": "signup", "leadId": "x"}, format="json")

    assert response.status_code == 401


# Score history


def test_history_lists_score_changes_newest_first(tenant, leads, django_assert_num_queries):
    lead = Lead.objects.get(project=tenant.project, anonymous_id="q-2")
    expected = list(ScoreHistory.objects.filter(lead=lead).select_related("event").order_by("-occurred_at", "-id"))
    assert expected

    with django_assert_num_queries(5):  # user, membership, lead, count, page
        response = tenant.client.get(f"/api/leads/{lead.id}/history")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == len(expected)
    assert [row["id"] for row in body["results"]] == [row.id for row in expected]
    first, row = body["results"][0], expected[0]
    assert first == {
        "id": row.id,
        "reason": row.reason,
        "oldScore": row.old_score,
        "newScore": row.new_score,
        "delta": row.delta,
        "occurredAt": first["occurredAt"],
        "eventId": row.event.event_id if row.event else None,
        "details": row.details,
    }


def test_history_pages_by_fifty_and_shows_rows_without_an_event(tenant):
    lead = scored_lead(tenant.project, "long", "page_view")
    now = timezone.now()
    ScoreHistory.objects.bulk_create(
        ScoreHistory(
            model=primary_model(tenant.project),
            project=tenant.project,
            lead=lead,
            reason="decay",
            old_score=10,
            new_score=9,
            delta=-1,
            occurred_at=now + timedelta(minutes=i),
        )
        for i in range(55)
    )

    first = tenant.client.get(f"/api/leads/{lead.id}/history").json()
    second = tenant.client.get(f"/api/leads/{lead.id}/history", {"page": 2}).json()

    total = ScoreHistory.objects.filter(lead=lead).count()
    assert first["count"] == total and len(first["results"]) == 50
    assert len(second["results"]) == total - 50
    assert first["results"][0]["eventId"] is None and first["results"][0]["reason"] == "decay"


def test_history_of_another_projects_lead_is_not_found(tenant, other_tenant, leads):
    theirs = Lead.objects.filter(project=other_tenant.project).first()
    assert theirs is not None

    response = tenant.client.get(f"/api/leads/{theirs.id}/history")
    missing = tenant.client.get("/api/leads/not-a-number/history")

    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert missing.status_code == 404


def test_history_rejects_a_bad_page(tenant, leads):
    response = tenant.client.get(f"/api/leads/{leads[0].id}/history", {"page": 99})

    assert response.status_code == 404
