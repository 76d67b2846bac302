"""The companies pages, the leads list's company column and filter, and the lead page's company card.

Leads go in through ingest and are scored by scoring's services; companies assign and roll them up with
their own services, as the worker's task does after commit.
"""

import csv
import io
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Membership
from companies.facets import ASSOCIATED_COMPANY
from companies.models import Company, CompanyMembership
from companies.services import companies_recompute, leads_assign
from core.leadfacets import lead_facets
from ingest.models import Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from scoring.services import lead_score
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db
NOW = timezone.now().replace(microsecond=0)


def person(project, name, email, *names):
    """A lead identified by `email` with one tracked event per name, scored; returns its id."""
    events = [
        CanonicalEvent(
            event_id=f"{name}-id",
            type="identify",
            name="identify",
            anonymous_id=name,
            properties={"email": email, "name": name.title()},
            timestamp=NOW - timedelta(hours=1),
        )
    ]
    events += [
        CanonicalEvent(event_id=f"{name}-{i}", name=event, anonymous_id=name, timestamp=NOW - timedelta(minutes=i + 1))
        for i, event in enumerate(reversed(names))
    ]
    events_ingest(project_id=project.id, events=events)
    lead = Lead.objects.get(project=project, anonymous_id=name)
    lead_score(lead_id=lead.id)
    return lead.id


def roll_up(project, *lead_ids):
    companies_recompute(company_ids=leads_assign(project_id=project.id, lead_ids=lead_ids))


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def acme(tenant):
    """Acme: ann (10, cold), bob (10, cold) and cy (15, warm), below hot each; the company is hot (35 + 10)."""
    leads = [person(tenant.project, "ann", "ann@acme.com", "email_open"),
             person(tenant.project, "bob", "bob@acme.com", "email_open"),
             person(tenant.project, "cy", "cy@eu.acme.com", "email_open", "page_view")]  # fmt: skip
    globex = person(tenant.project, "gil", "gil@globex.com", "signup")
    person(tenant.project, "pat", "pat@gmail.com", "signup")  # free mail: no company
    roll_up(tenant.project, *leads, globex)
    return Company.objects.get(project=tenant.project, key="acme.com")


@pytest.fixture
def theirs(other_tenant):
    lead = person(other_tenant.project, "zed", "zed@initech.com", "demo_request")
    roll_up(other_tenant.project, lead)
    return Company.objects.get(project=other_tenant.project)


def test_the_companies_page_lists_scores_stages_and_members(tenant, acme, django_assert_num_queries):
    client = signed_in(tenant.owner)
    client.get("/companies/")  # the session's project settles
    with django_assert_num_queries(7):  # session, user, membership, models, count, page, the shell's projects
        page = client.get("/companies/")
    html = page.content.decode()
    rows = [(c.key, c.score, c.stage, c.member_count) for c in page.context["page"].object_list]
    assert rows == [("acme.com", 45, "hot", 3), ("globex.com", 40, "hot", 1)]
    assert f'<tr data-company-id="{acme.id}"' in html and "js/companies.js" in html
    assert '<a href="/companies/" class="active">Companies</a>' in html  # the navigation's entry


def test_the_companies_page_searches_filters_and_sorts(tenant, acme):
    client = signed_in(tenant.owner)

    def keys(query):
        return [c.key for c in client.get(f"/companies/{query}").context["page"].object_list]

    assert keys("?search=glob") == ["globex.com"]
    assert keys("?stage=hot&ordering=name") == ["acme.com", "globex.com"]
    assert keys("?ordering=-name") == ["globex.com", "acme.com"]
    assert keys("?ordering=-members") == ["acme.com", "globex.com"]
    assert keys("?stage=cold") == []
    page = client.get("/companies/?stage=lukewarm&ordering=shoe-size")
    assert page.status_code == 200 and set(page.context["form"].errors) == {"stage", "ordering"}
    assert len(page.context["page"].object_list) == 2  # ignored


def test_the_companies_page_paginates(tenant, acme, monkeypatch):
    monkeypatch.setattr("companies.views.COMPANIES_PER_PAGE", 1)
    client = signed_in(tenant.owner)
    first, second = client.get("/companies/"), client.get("/companies/?page=2")
    assert [c.key for c in first.context["page"].object_list] == ["acme.com"]
    assert [c.key for c in second.context["page"].object_list] == ["globex.com"]
    assert 'rel="next"' in first.content.decode()


def test_the_company_page_shows_members_breakdown_history_and_activity(tenant, acme, django_assert_num_queries):
    client = signed_in(tenant.owner)
    client.get("/companies/")
    # session, user, membership, models, the company, its history (the selector checks the company again), members,
    # roll-up settings, every model's score, member activity, the shell's projects; chart and breakdown read no more
    with django_assert_num_queries(12):
        page = client.get(f"/companies/{acme.id}/")
    html = page.content.decode()
    assert page.status_code == 200
    members = [(lead.anonymous_id, lead.member_score, points) for lead, points in page.context["members"]]
    assert members == [("cy", 15, 25), ("ann", 10, 10), ("bob", 10, 10)]  # top 3 + breadth (cy is engaged)
    breakdown = page.context["breakdown"]
    assert (breakdown["top"], breakdown["breadth"], breakdown["fit"], breakdown["engaged"]) == (35, 10, 0, 1)
    cy = Lead.objects.get(project=tenant.project, anonymous_id="cy")
    assert f'href="/leads/{cy.id}/"' in html  # members link to their lead pages
    assert [(row.new_score, name) for row, name in page.context["history"]] == [(45, "Cy")]
    assert '<div class="card chart spaced" id="chart-score"><svg' in html
    assert {event.lead.anonymous_id for event in page.context["activity"]} == {"ann", "bob", "cy"}
    assert "page_view" in html and 'id="company-form"' in html and 'id="merge"' in html


def test_other_projects_companies_are_not_found(tenant, acme, theirs):
    client = signed_in(tenant.owner)
    assert client.get(f"/companies/{theirs.id}/").status_code == 404
    assert client.get(f"/companies/{theirs.id}/merge/").status_code == 404
    assert client.get(f"/companies/{acme.id}/merge/?into={theirs.id}").status_code == 404
    assert client.post(f"/companies/{theirs.id}/edit/", {"name": "x", "traits": "{}"}).status_code == 404
    assert client.get("/companies/99999999/").status_code == 404
    found = client.get("/companies/?search=initech")
    assert (
        list(found.context["page"].object_list) == [] and f'data-company-id="{theirs.id}"' not in found.content.decode()
    )
    leads = client.get(f"/leads/?associatedCompany={theirs.id}")
    assert leads.status_code == 200 and list(leads.context["page"].object_list) == []
    assert client.get(f"/companies/{acme.id}/?model=nope").status_code == 404


def test_a_member_sees_no_merge_action_and_may_not_merge(tenant, acme):
    member = UserFactory()
    Membership.objects.create(user=member, project=tenant.project, role=Membership.Role.MEMBER)
    client = signed_in(member)
    html = client.get(f"/companies/{acme.id}/").content.decode()
    assert 'id="merge"' not in html
    globex = Company.objects.get(project=tenant.project, key="globex.com")
    assert client.post(f"/companies/{acme.id}/merge/", {"into": globex.id}).status_code == 403
    assert Company.objects.get(id=acme.id).merged_into_id is None


def test_the_leads_list_has_a_company_column_filter_and_sort(tenant, acme, django_assert_num_queries):
    client = signed_in(tenant.owner)
    client.get("/leads/")
    page = client.get(f"/leads/?associatedCompany={acme.id}")
    html = page.content.decode()
    assert sorted(lead.anonymous_id for lead in page.context["page"].object_list) == ["ann", "bob", "cy"]
    assert f'<a href="/companies/{acme.id}/" data-company-link="{acme.id}">acme.com</a>' in html
    assert 'data-facet-filter="associatedCompany"' in html
    ordered = client.get("/leads/?ordering=-associatedCompany").context["page"].object_list
    shown = [lead.anonymous_id for lead in ordered]
    assert set(shown[:3]) == {"ann", "bob", "cy"} and shown[3:] == ["gil", "pat"]  # acme 45, globex 40, none last
    bad = client.get("/leads/?associatedCompany=acme")
    assert bad.status_code == 200 and "associatedCompany" in bad.context["form"].errors
    # the facet adds one query to the page, whatever the number of leads on it
    with_facet = len(_queries(client, "/leads/"))
    lead_facets.unregister(ASSOCIATED_COMPANY.key)
    try:
        without = len(_queries(client, "/leads/"))
    finally:
        lead_facets.register(ASSOCIATED_COMPANY)
    assert with_facet == without + 1
    person(tenant.project, "dan", "dan@acme.com", "page_view")
    roll_up(tenant.project, Lead.objects.get(anonymous_id="dan").id)
    with django_assert_num_queries(with_facet):
        client.get("/leads/")


def _queries(client, url):
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return captured.captured_queries


def test_the_lead_page_has_a_company_card(tenant, acme):
    ann = Lead.objects.get(project=tenant.project, anonymous_id="ann")
    html = signed_in(tenant.owner).get(f"/leads/{ann.id}/").content.decode()
    assert 'id="facet-associatedCompany"' in html
    card = html.split('id="facet-associatedCompany"')[1].split("</section>")[0]
    assert f'href="/companies/{acme.id}/"' in card and ">45<" in card and "stage-hot" in card
    assert '>3</div><div class="label">Members' in card
    pat = Lead.objects.get(project=tenant.project, anonymous_id="pat")
    assert "No company" in signed_in(tenant.owner).get(f"/leads/{pat.id}/").content.decode()


def test_the_lead_api_and_exports_carry_the_company(tenant, acme):
    body = tenant.client.get("/api/leads?ordering=name").json()
    found = {lead["anonymousId"]: lead["associatedCompany"] for lead in body["results"]}
    assert found["ann"] == {"id": acme.id, "name": "acme.com", "domain": "acme.com", "score": 45, "stage": "hot",
                            "members": 3}  # fmt: skip
    assert found["pat"] is None
    assert [lead["anonymousId"] for lead in tenant.client.get(f"/api/leads?associatedCompany={acme.id}").json()[
        "results"]] != []  # fmt: skip
    response = tenant.client.get("/api/leads/export")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {row["Company"] for row in rows} == {"acme.com", "globex.com", ""}
    schema = tenant.client.get("/api/schema/?format=json").json()
    parameters = {p["name"]: p["schema"] for p in schema["paths"]["/api/leads"]["get"]["parameters"]}
    assert parameters["associatedCompany"] == {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
    properties = schema["components"]["schemas"]["Lead"]["properties"]["associatedCompany"]["properties"]
    assert set(properties) == {"id", "name", "domain", "score", "stage", "members"}
    for bad in ("acme", "-1", "١٢", str(2**63)):
        response = tenant.client.get("/api/leads", {"associatedCompany": bad})
        assert response.status_code == 400 and "associatedCompany" in response.json()["error"]["fields"]


def test_a_merged_away_companys_page_leads_to_its_survivor(tenant, acme):
    globex = Company.objects.get(project=tenant.project, key="globex.com")
    Company.objects.filter(id=globex.id).update(merged_into=acme)
    CompanyMembership.objects.filter(company=globex).update(company=acme)
    response = signed_in(tenant.owner).get(f"/companies/{globex.id}/")
    assert response.status_code == 302 and response["Location"] == f"/companies/{acme.id}/"


def test_a_member_edits_the_name_and_traits_through_the_apis_service(tenant, acme):
    member = UserFactory()
    Membership.objects.create(user=member, project=tenant.project, role=Membership.Role.MEMBER)
    client = signed_in(member)
    response = client.post(f"/companies/{acme.id}/edit/", {"name": "Acme Inc", "traits": '{"industry": "software"}'})
    assert response.status_code == 302 and response["Location"] == f"/companies/{acme.id}/"
    acme.refresh_from_db()
    assert (acme.name, acme.traits) == ("Acme Inc", {"industry": "software"})
    page = client.get(f"/companies/{acme.id}/").content.decode()
    assert "Acme Inc" in page and "software" in page


@pytest.mark.parametrize(
    ("traits", "message"),
    [("[1, 2]", "Must be a JSON object."), ("{nope", "Must be JSON"), ('{"a": "\\u0000"}', "NUL")],
)
def test_bad_traits_are_refused_with_the_field_named(tenant, acme, traits, message):
    response = signed_in(tenant.owner).post(f"/companies/{acme.id}/edit/", {"name": "X", "traits": traits})
    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors["traits"])
    assert 'data-error-for="traits"' in response.content.decode()
    acme.refresh_from_db()
    assert (acme.name, acme.traits) == ("acme.com", {})


def test_an_admin_reviews_then_merges_a_company(tenant, acme):
    globex = Company.objects.get(project=tenant.project, key="globex.com")
    client = signed_in(tenant.owner)
    review = client.get(f"/companies/{globex.id}/merge/?into={acme.id}")
    assert review.status_code == 200 and 'id="merge-form"' in review.content.decode()
    assert Company.objects.get(id=globex.id).merged_into_id is None  # asking changes nothing
    assert client.get(f"/companies/{globex.id}/merge/?into={globex.id}").status_code == 400
    assert client.get(f"/companies/{globex.id}/merge/?into=x").status_code == 400

    response = client.post(f"/companies/{globex.id}/merge/", {"into": acme.id})

    assert response.status_code == 302 and response["Location"] == f"/companies/{acme.id}/"
    assert Company.objects.get(id=globex.id).merged_into_id == acme.id
    page = client.get(f"/companies/{acme.id}/")
    assert (
        page.context["company"].member_count == 4 and page.context["company"].score == 30 + 15 + 10 + 2 * 10
    )  # gil, cy, ann; gil and cy engaged
    assert client.get(f"/companies/{globex.id}/").status_code == 302  # the merged id leads to the survivor
    assert [c.key for c in client.get("/companies/").context["page"].object_list] == ["acme.com"]


def test_the_export_link_streams_the_filtered_companies(tenant, acme):
    client = signed_in(tenant.owner)
    assert 'href="/companies/export.csv?stage=hot"' in client.get("/companies/?stage=hot").content.decode()
    response = client.get("/companies/export.csv?stage=hot&ordering=name")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert response["Content-Disposition"] == 'attachment; filename="companies.csv"'
    assert [(row["key"], row["score"], row["stage"], row["members"]) for row in rows] == [
        ("acme.com", "45", "hot", "3"), ("globex.com", "40", "hot", "1"),
    ]  # fmt: skip


def test_the_company_pages_queries_do_not_grow_with_its_members(tenant, acme):
    client = signed_in(tenant.owner)
    client.get("/companies/")
    before = len(_queries(client, f"/companies/{acme.id}/"))
    more = [person(tenant.project, f"m{i}", f"m{i}@acme.com", "page_view", "email_open") for i in range(8)]
    roll_up(tenant.project, *more)
    assert len(_queries(client, f"/companies/{acme.id}/")) == before
    assert len(_queries(client, "/companies/")) == 7


def test_the_breakdown_names_the_fit_rules_applied_after_a_traits_edit(tenant, acme):
    settings = {"topN": 3, "breadthPoints": 10, "breadthCap": 5, "windowDays": 30,
                "fitRules": [{"name": "Software", "points": 25,
                              "conditions": [{"path": "industry", "op": "eq", "value": "software"}]}]}  # fmt: skip
    assert tenant.client.put("/api/companies/settings", settings, format="json").status_code == 200
    client = signed_in(tenant.owner)
    client.post(f"/companies/{acme.id}/edit/", {"name": "Acme", "traits": '{"industry": "software"}'})
    page = client.get(f"/companies/{acme.id}/")
    assert page.context["fit_applied"] == [("Software", 25)] and page.context["company"].score == 45 + 25
    assert "Fit: Software" in page.content.decode()
