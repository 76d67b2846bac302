"""The lead document webhooks and automations carry has every lead facet's value, read once per facet for a batch."""

import pytest

from automations import services
from automations.models import WebhookDelivery
from core.contracts import LeadChange
from core.leadfacets import LeadFacet, lead_facets
from tests.automations.factories import WebhookSubscriptionFactory
from tests.ingest.factories import LeadFactory

pytestmark = pytest.mark.django_db

CALLS: list[tuple[int, list[int]]] = []


def tier_values(project_id, lead_ids):
    CALLS.append((project_id, list(lead_ids)))
    return {lead_id: f"tier-{lead_id}" for lead_id in lead_ids[:-1]}  # the last lead has none


TIER = LeadFacet(key="tier", label="Tier", order=99, values=tier_values, schema={"type": "string", "nullable": True})


@pytest.fixture
def tier():
    CALLS.clear()
    lead_facets.register(TIER)
    yield TIER
    lead_facets.unregister(TIER.key)


def scored(lead):
    return LeadChange.from_message({
        "kind": "scored", "projectId": lead.project_id, "leadId": lead.id, "oldScore": 0, "newScore": 10,
        "oldStage": "cold", "newStage": "cold", "velocity": 1, "eventIds": [], "path": [[10, "cold"]],
    })  # fmt: skip


def test_a_batch_reads_each_facet_once_and_every_delivery_carries_every_facet(tenant, other_tenant, tier):
    leads = [LeadFactory(project=tenant.project, anonymous_id=f"a-{i}", current_score=10) for i in range(3)]
    quiet = LeadFactory(project=other_tenant.project, anonymous_id="q-1")  # no subscriber: its facets are not read
    WebhookSubscriptionFactory(project=tenant.project, events=["lead.updated"])

    services.lead_changes_handle(changes=[scored(lead) for lead in [*leads, quiet]])

    assert [(tenant.project.id, sorted(lead.id for lead in leads))] == CALLS  # one call, not one per lead
    documents = {d.payload["data"]["lead"]["id"]: d.payload["data"]["lead"] for d in WebhookDelivery.objects.all()}
    assert set(documents) == {lead.id for lead in leads}
    last = max(lead.id for lead in leads)
    assert {lead_id: document["tier"] for lead_id, document in documents.items()} == {
        lead.id: (None if lead.id == last else f"tier-{lead.id}") for lead in leads
    }
    # the registered apps' facets are there too, null for leads without a company, outcome or model
    for document in documents.values():
        assert {"associatedCompany", "outcome", "conversionProbability"} <= document.keys()
        assert document["associatedCompany"] is None and document["conversionProbability"] is None


def test_a_single_change_still_carries_the_facets(tenant, tier):
    lead = LeadFactory(project=tenant.project, anonymous_id="solo", current_score=10)
    WebhookSubscriptionFactory(project=tenant.project, events=["lead.updated"])

    services.lead_change_handle(change=scored(lead))

    assert [(tenant.project.id, [lead.id])] == CALLS
    assert WebhookDelivery.objects.get().payload["data"]["lead"]["tier"] is None  # the only (last) lead has none
