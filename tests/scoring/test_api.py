import pytest

from core.leadfacets import lead_facets
from tests.scoring.factories import scored_lead

pytestmark = pytest.mark.django_db

LEAD_FIELDS = {
    "id", "anonymousId", "userId", "email", "name", "company", "currentScore", "engagementScore", "fitScore",
    "fitGrade", "leadStage", "velocityScore", "eventsLast24h", "lastEventAt", "firstSeenAt", "createdAt", "matrixCell",
    "scores",
}  # fmt: skip


@pytest.fixture
def leads(tenant):
    return {
        "cold": scored_lead(tenant.project, "cold-1", "page_view", email="cold@example.com"),
        "warm": scored_lead(tenant.project, "warm-1", "signup", name="Wanda Warm"),
        "hot": scored_lead(tenant.project, "hot-1", "demo_request", company="Hotco"),
        "qualified": scored_lead(tenant.project, "q-1", "demo_request", "signup"),
    }


def test_list_is_paginated_ordered_by_score_with_the_lead_fields(tenant, leads):
    body = tenant.client.get("/api/leads").json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 4
    assert [r["anonymousId"] for r in body["results"]] == ["q-1", "hot-1", "warm-1", "cold-1"]
    assert set(body["results"][0]) == LEAD_FIELDS | {facet.key for facet in lead_facets}  # and the apps' facets
    assert body["results"][0]["currentScore"] == 80 and body["results"][0]["leadStage"] == "qualified"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("stage=warm", ["warm-1"]),
        ("anonymousId=hot-1", ["hot-1"]),
        ("search=cold@exa", ["cold-1"]),
        ("search=wanda", ["warm-1"]),
        ("search=hotco", ["hot-1"]),
        ("ordering=currentScore", ["cold-1", "warm-1", "hot-1", "q-1"]),
    ],
)
def test_list_filters(tenant, leads, query, expected):
    assert [r["anonymousId"] for r in tenant.client.get(f"/api/leads?{query}").json()["results"]] == expected


def test_search_by_id(tenant, leads):
    results = tenant.client.get(f"/api/leads?search={leads['hot'].id}").json()["results"]
    assert leads["hot"].id in [r["id"] for r in results]


@pytest.mark.parametrize(("query", "field"), [("stage=boiling", "stage"), ("ordering=password", "ordering")])
def test_list_rejects_bad_filters(tenant, leads, query, field):
    response = tenant.client.get(f"/api/leads?{query}")
    assert response.status_code == 400 and field in response.json()["error"]["fields"]


def test_list_query_count_does_not_grow_with_leads(tenant, leads, django_assert_num_queries):
    facets = len(list(lead_facets))  # one query each per page (`core.leadfacets`)
    with django_assert_num_queries(5 + facets):  # user, membership, count, page, the models (for `scores`)
        assert tenant.client.get("/api/leads").status_code == 200
    for i in range(20):
        scored_lead(tenant.project, f"more-{i}", "page_view")
    with django_assert_num_queries(5 + facets):
        assert len(tenant.client.get("/api/leads").json()["results"]) == 24


def test_detail_and_timeline(tenant, leads):
    lead = leads["qualified"]
    assert tenant.client.get(f"/api/leads/{lead.id}").json()["currentScore"] == 80

    body = tenant.client.get(f"/api/leads/{lead.id}/timeline").json()
    assert body["lead"]["id"] == lead.id
    assert [(e["eventType"], e["scoreDelta"], e["newScore"]) for e in body["events"]] == [
        ("demo_request", 50, 50),
        ("signup", 30, 80),
    ]
    assert set(body["events"][0]) == {"eventId", "eventType", "timestamp", "properties", "scoreDelta", "newScore",
                                      "adjustment"}  # fmt: skip
    assert body["events"][0]["adjustment"] is None  # set on manual adjustments only
    assert tenant.client.get(f"/api/leads/{lead.id}/timeline?limit=").json() == body  # empty: the default
    assert len(tenant.client.get(f"/api/leads/{lead.id}/timeline?limit=1").json()["events"]) == 1


def test_leads_of_another_project_are_404_and_never_listed(tenant, other_tenant, leads):
    mine = scored_lead(other_tenant.project, "hot-1", "signup")  # same anonymousId, other project
    for path in (f"/api/leads/{leads['hot'].id}", f"/api/leads/{leads['hot'].id}/timeline"):
        assert other_tenant.client.get(path).status_code == 404
    assert tenant.client.get(f"/api/leads/{mine.id}").status_code == 404
    assert [r["id"] for r in other_tenant.client.get("/api/leads").json()["results"]] == [mine.id]
    assert tenant.client.get("/api/leads/not-a-number").status_code == 404


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ("pageSize=abc", 400, "pageSize"),
        ("pageSize=0", 400, "pageSize"),
        ("page=0", 404, None),
        ("page=abc", 404, None),
    ],
)
def test_malformed_pagination_is_refused_not_defaulted(tenant, leads, query, status, field):
    response = tenant.client.get(f"/api/leads?{query}")
    assert response.status_code == status
    if field:
        assert field in response.json()["error"]["fields"]


def test_page_size_is_capped(tenant, leads):
    body = tenant.client.get("/api/leads?pageSize=100000").json()
    assert body["count"] == 4 and len(body["results"]) == 4


@pytest.mark.parametrize(
    "query", ["stage=", "ordering=", "stage=&ordering=&search=&anonymousId=", "page=", "pageSize=", "page=&pageSize="]
)
def test_empty_filters_mean_no_filter(tenant, leads, query):
    # an empty query parameter is the same as leaving it out (documented as allowEmptyValue)
    body = tenant.client.get(f"/api/leads?{query}").json()
    assert body["count"] == 4 and len(body["results"]) == 4


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"anonymousId": 5}, "anonymousId"),
        ({"anonymousId": "a", "company": 0}, "company"),
        ({"anonymousId": " "}, "anonymousId"),
    ],
)
def test_create_takes_json_strings_only(tenant, payload, field):
    response = tenant.client.post("/api/leads", payload, format="json")
    assert response.status_code == 400 and field in response.json()["error"]["fields"]
