"""Lead facets: an app above scoring adds a field, column, filter, sort key, card and export column to leads.

Registered here for the test's duration, as companies and predictions register theirs once their apps are
ready; each facet's values are read once per page, whatever the number of leads on it.
"""

import csv
import io

import pytest
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.test import Client

from core.errors import ApplicationError
from core.leadfacets import LeadFacet, lead_facets
from ingest.models import Lead
from tests.scoring.factories import scored_lead

pytestmark = pytest.mark.django_db

CALLS: list[tuple[int, list[int]]] = []


def tier_values(project_id, lead_ids):
    """A tier per lead, from its anonymous id's first letter (a: gold, b: silver; others none)."""
    CALLS.append((project_id, list(lead_ids)))
    tiers = {"a": "gold", "b": "silver"}
    return {
        lead_id: tiers[anonymous_id[0]]
        for lead_id, anonymous_id in Lead.objects.filter(project_id=project_id, id__in=lead_ids).values_list(
            "id", "anonymous_id"
        )
        if anonymous_id[0] in tiers
    }


def tier_filter(project_id, value):
    if value not in ("gold", "silver"):
        raise ApplicationError("Must be gold or silver.", field="tier")
    prefix = {"gold": "a", "silver": "b"}[value]
    return Lead.objects.filter(project_id=project_id, anonymous_id__startswith=prefix).values("id")


TIER = LeadFacet(
    key="tier",
    label="Tier",
    order=10,
    values=tier_values,
    schema={"type": "string", "nullable": True},
    column="core/_lead_facet_value.html",
    card="core/_lead_facet_value.html",
    filter=tier_filter,
    ordering=lambda: Concat(F("anonymous_id"), Value("")),
    export=lambda value: value or "",
)


@pytest.fixture
def tier():
    CALLS.clear()
    lead_facets.register(TIER)
    yield TIER
    lead_facets.unregister(TIER.key)


@pytest.fixture
def leads(tenant):
    return [
        scored_lead(tenant.project, "a-1", "demo_request"),
        scored_lead(tenant.project, "b-1", "signup"),
        scored_lead(tenant.project, "c-1", "page_view"),
    ]


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_lead_api_carries_each_facets_value_read_once_per_page(tenant, leads, tier):
    body = tenant.client.get("/api/leads").json()
    values = {lead["anonymousId"]: lead["tier"] for lead in body["results"]}
    assert values == {"a-1": "gold", "b-1": "silver", "c-1": None}
    assert (
        len(CALLS) == 1
        and CALLS[0][0] == tenant.project.id
        and sorted(CALLS[0][1]) == sorted(lead.id for lead in leads)
    )
    one = tenant.client.get(f"/api/leads/{leads[0].id}").json()
    assert one["tier"] == "gold"


def test_the_lead_api_filters_and_sorts_by_a_facet(tenant, leads, tier):
    body = tenant.client.get("/api/leads?tier=silver").json()
    assert [lead["anonymousId"] for lead in body["results"]] == ["b-1"]
    body = tenant.client.get("/api/leads?ordering=-tier").json()
    assert [lead["anonymousId"] for lead in body["results"]] == ["c-1", "b-1", "a-1"]
    response = tenant.client.get("/api/leads?tier=bronze")
    assert response.status_code == 400 and response.json()["error"]["fields"].keys() == {"tier"}


def test_the_leads_page_shows_a_column_filter_and_sort_link(tenant, leads, tier):
    page = browser(tenant.owner).get("/leads/?tier=gold")
    html = page.content.decode()
    assert [lead.anonymous_id for lead in page.context["page"].object_list] == ["a-1"]
    assert '<td data-facet="tier">gold' in html and 'data-facet-filter="tier"' in html
    assert "ordering=-tier" in html
    page = browser(tenant.owner).get("/leads/?tier=bronze")
    assert page.status_code == 200 and "tier" in page.context["form"].errors
    assert len(page.context["page"].object_list) == 3


def test_the_lead_page_shows_the_facets_card(tenant, leads, tier):
    html = browser(tenant.owner).get(f"/leads/{leads[1].id}/").content.decode()
    assert 'id="facet-tier"' in html and "silver" in html


def test_exports_carry_the_facets_column(tenant, leads, tier):
    response = tenant.client.get("/api/leads/export")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    column = rows[0].index("Tier")  # the apps' own facets' columns come after it (by their order)
    assert sorted(row[column] for row in rows[1:]) == ["", "gold", "silver"]


def test_without_facets_nothing_is_added(tenant, leads):
    body = tenant.client.get("/api/leads").json()
    assert "tier" not in body["results"][0]


def test_a_key_is_registered_once(tier):
    lead_facets.register(TIER)  # the same facet again: a no-op
    with pytest.raises(ValueError, match="tier"):
        lead_facets.register(LeadFacet(key="tier", label="Other", order=1, values=tier_values))
