"""The companies API on PostgreSQL: list, detail, change, merge, export, leaderboard and roll-up settings."""

import csv
import io

import pytest
from django.utils import timezone

from accounts.models import Membership
from companies import services
from companies.models import Company, CompanyMembership, CompanyScore
from companies.services import lead_changes_consume
from core.contracts import COMPANY_LEAD_CHANGES_TASK, LeadChange
from ingest.models import Lead
from leadpulse.celery import app as celery_app
from scoring.models import LeadScore, ScoringModel
from tests.accounts.factories import UserFactory
from tests.conftest import client_for
from tests.handover import sent_to

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def assign(project, leads):
    """Hand the leads to companies as a scoring batch does (the real consumer)."""
    lead_changes_consume(
        changes=[
            LeadChange(kind="scored", project_id=project.id, lead_id=lead.id, old_score=0, new_score=0,
                       old_stage="cold", new_stage="cold")
            for lead in leads
        ]
    )  # fmt: skip


def people(project, *specs, **fields):
    """specs: (anonymous id, email, primary score); the leads, assigned to their companies and rolled up."""
    leads = [
        Lead.objects.create(project=project, anonymous_id=name, email=email, current_score=score,
                            lead_stage="cold" if score < 11 else "warm" if score < 31 else "hot" if score < 60
                            else "qualified", last_event_at=NOW, **fields)
        for name, email, score in specs
    ]  # fmt: skip
    assign(project, leads)
    return leads


def company(domain):
    return Company.objects.get(domain=domain)


@pytest.fixture
def three(tenant):
    """acme (ann 40, bob 20), globex (cy 5), initech (dee 25, eve 12, fay 3)."""
    return people(
        tenant.project,
        ("ann", "ann@acme.com", 40),
        ("bob", "bob@acme.com", 20),
        ("cy", "cy@globex.com", 5),
        ("dee", "dee@initech.com", 25),
        ("eve", "eve@initech.com", 12),
        ("fay", "fay@initech.com", 3),
    )


@pytest.fixture
def member(tenant):
    user = UserFactory()
    Membership.objects.create(user=user, project=tenant.project, role=Membership.Role.MEMBER)
    return client_for(user)


def test_the_list_is_scored_filtered_searched_sorted_and_paginated(tenant, three):
    def domains(**query):
        response = tenant.client.get("/api/companies", query)
        assert response.status_code == 200, response.content
        return [(row["domain"], row["score"], row["stage"], row["members"]) for row in response.json()["results"]]

    # acme 60 + 2 x 10; initech 25 + 12 + 3 + 2 x 10 (fay is cold); globex 5
    assert domains() == [("acme.com", 80, "qualified", 2), ("initech.com", 60, "qualified", 3),
                         ("globex.com", 5, "cold", 1)]  # fmt: skip
    assert [d for d, *_ in domains(stage="cold")] == ["globex.com"]
    assert [d for d, *_ in domains(search="INIT")] == ["initech.com"]
    assert [d for d, *_ in domains(ordering="name")] == ["acme.com", "globex.com", "initech.com"]
    assert [d for d, *_ in domains(ordering="-members")] == ["initech.com", "acme.com", "globex.com"]
    assert [d for d, *_ in domains(ordering="score")] == ["globex.com", "initech.com", "acme.com"]
    page = tenant.client.get("/api/companies", {"pageSize": 2, "page": 2}).json()
    assert page["count"] == 3 and [row["domain"] for row in page["results"]] == ["globex.com"]
    assert set(page["results"][0]) == {"id", "key", "name", "domain", "score", "stage", "members", "createdAt",
                                       "updatedAt"}  # fmt: skip


@pytest.mark.parametrize(
    ("query", "field"), [({"stage": "boiling"}, "stage"), ({"ordering": "traits"}, "ordering"),
                         ({"pageSize": "many"}, "pageSize")]
)  # fmt: skip
def test_bad_list_parameters_are_400_naming_them(tenant, query, field):
    response = tenant.client.get("/api/companies", query)
    assert response.status_code == 400 and field in response.json()["error"]["fields"]


def test_an_unknown_model_is_404(tenant):
    assert tenant.client.get("/api/companies", {"model": "nope"}).status_code == 404


def test_the_list_costs_the_same_queries_for_3_or_30_companies(tenant, three, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        assert tenant.client.get("/api/companies").status_code == 200
    people(tenant.project, *((f"p{i}", f"p{i}@firm{i}-corp.com", i) for i in range(27)))
    with CaptureQueriesContext(connection) as many:
        assert len(tenant.client.get("/api/companies").json()["results"]) == 30
    assert len(many.captured_queries) == len(few.captured_queries)
    with django_assert_max_num_queries(len(few.captured_queries)):
        tenant.client.get("/api/companies", {"model": "default", "stage": "warm", "search": "firm1"})


def test_the_list_under_another_model(tenant, three):
    other = ScoringModel.objects.create(project=tenant.project, key="b", name="B", warm_threshold=5,
                                        hot_threshold=8, qualified_threshold=100)  # fmt: skip
    cy = Lead.objects.get(anonymous_id="cy")
    LeadScore.objects.create(project=tenant.project, lead=cy, model=other, score=9, stage="hot", updated_at=NOW)
    assign(tenant.project, [cy])
    rows = tenant.client.get("/api/companies", {"model": "b"}).json()["results"]
    assert (rows[0]["domain"], rows[0]["score"], rows[0]["stage"]) == ("globex.com", 9 + 10, "hot")


def test_the_detail_has_traits_every_models_score_breakdown_and_members_best_first(tenant, three):
    acme = company("acme.com")
    Company.objects.filter(id=acme.id).update(traits={"industry": "software"})
    ScoringModel.objects.create(project=tenant.project, key="b", name="B")
    ann, bob = Lead.objects.get(anonymous_id="ann"), Lead.objects.get(anonymous_id="bob")

    body = tenant.client.get(f"/api/companies/{acme.id}").json()

    assert (body["domain"], body["score"], body["stage"], body["model"]) == ("acme.com", 80, "qualified", "default")
    assert body["traits"] == {"industry": "software"} and body["mergedIds"] == []
    assert body["breakdown"]["contributions"] == {str(ann.id): 50, str(bob.id): 30}
    assert (body["breakdown"]["top"], body["breakdown"]["breadth"], body["breakdown"]["engaged"]) == (60, 20, 2)
    assert [(s["model"], s["primary"], s["score"], s["stage"]) for s in body["scores"]] == [
        ("default", True, 80, "qualified"), ("b", False, 0, "cold")]  # fmt: skip
    assert [(m["id"], m["score"], m["stage"]) for m in body["topMembers"]] == [(ann.id, 40, "hot"),
                                                                                (bob.id, 20, "warm")]  # fmt: skip


def test_the_detail_costs_a_constant_number_of_queries(tenant, three, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    initech = company("initech.com")
    with CaptureQueriesContext(connection) as few:
        tenant.client.get(f"/api/companies/{initech.id}")
    people(tenant.project, *((f"p{i}", f"p{i}@initech.com", i) for i in range(30)))
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(tenant.client.get(f"/api/companies/{initech.id}").json()["topMembers"]) == 33


def test_another_projects_company_is_404(tenant, other_tenant, three):
    acme = company("acme.com")
    for method, path, body in (("get", "", None), ("patch", "", {"name": "Mine"}),
                               ("post", "/merge", {"into": company("globex.com").id})):  # fmt: skip
        response = getattr(other_tenant.client, method)(f"/api/companies/{acme.id}{path}", body, format="json")
        assert response.status_code == 404
    assert company("acme.com").name == "acme.com" and not company("acme.com").merged_into_id


def test_a_member_changes_the_name_and_traits_and_the_fit_rules_follow(tenant, three, member):
    settings = {"topN": 3, "breadthPoints": 10, "breadthCap": 5, "windowDays": 30,
                "fitRules": [{"name": "Software", "points": 25,
                              "conditions": [{"path": "industry", "op": "eq", "value": "software"}]}]}  # fmt: skip
    assert tenant.client.put("/api/companies/settings", settings, format="json").status_code == 200
    globex = company("globex.com")

    response = member.patch(f"/api/companies/{globex.id}", {"name": "Globex Corp", "traits": {"industry": "Software"}},
                            format="json")  # fmt: skip

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["name"], body["traits"], body["score"]) == ("Globex Corp", {"industry": "Software"}, 5 + 25)
    assert body["breakdown"]["fitApplied"] == [[1, 25]]
    assert CompanyScore.objects.get(company=globex).score == 30


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"domain": "evil.com"}, "domain"),
        ({"score": 99}, "score"),
        ({"traits": ["industry"]}, "traits"),
        ({"traits": {"a": "\x00"}}, "traits"),
        ({"name": 7}, "name"),
        ({"name": "x" * 256}, "name"),
    ],
)
def test_a_bad_change_is_400_naming_the_field_and_changes_nothing(tenant, three, body, field):
    acme = company("acme.com")
    response = tenant.client.patch(f"/api/companies/{acme.id}", body, format="json")
    assert response.status_code == 400 and field in response.json()["error"]["fields"], response.content
    assert Company.objects.get(id=acme.id).name == "acme.com"


def test_merging_moves_members_merges_traits_and_keeps_the_key_as_an_alias(tenant, three):
    acme, initech = company("acme.com"), company("initech.com")
    Company.objects.filter(id=acme.id).update(traits={"industry": "software", "plan": "pro"})
    Company.objects.filter(id=initech.id).update(name="Initech", traits={"plan": "enterprise", "employees": 40})

    response = tenant.client.post(f"/api/companies/{acme.id}/merge", {"into": initech.id}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["name"], body["members"], body["mergedIds"]) == (initech.id, "Initech", 5, [acme.id])
    assert body["traits"] == {"industry": "software", "plan": "enterprise", "employees": 40}  # the survivor's win
    assert body["score"] == 40 + 25 + 20 + 4 * 10  # top 3 of five, breadth for the four warm ones (fay is cold)
    assert set(CompanyMembership.objects.values_list("company_id", flat=True)) == {initech.id, company("globex.com").id}
    assert not CompanyScore.objects.filter(company=acme).exists()
    # the merged id answers with the survivor; it is no longer listed
    assert tenant.client.get(f"/api/companies/{acme.id}").json()["id"] == initech.id
    listed = [row["id"] for row in tenant.client.get("/api/companies").json()["results"]]
    assert acme.id not in listed and initech.id in listed

    # a later lead of acme.com joins the survivor; acme is never recreated
    gus = people(tenant.project, ("gus", "gus@acme.com", 35))[0]
    assert CompanyMembership.objects.get(lead=gus).company_id == initech.id
    assert Company.objects.filter(domain="acme.com").count() == 1
    assert CompanyScore.objects.get(company=initech).score == 40 + 35 + 25 + 5 * 10


def test_merging_chains_stay_one_hop(tenant, three):
    acme, globex, initech = company("acme.com"), company("globex.com"), company("initech.com")
    tenant.client.post(f"/api/companies/{acme.id}/merge", {"into": globex.id}, format="json")
    # into a merged-away id: its survivor
    response = tenant.client.post(f"/api/companies/{globex.id}/merge", {"into": initech.id}, format="json")
    assert response.status_code == 200
    assert Company.objects.get(id=acme.id).merged_into_id == initech.id
    assert sorted(response.json()["mergedIds"]) == sorted([acme.id, globex.id])
    assert tenant.client.get(f"/api/companies/{acme.id}").json()["id"] == initech.id
    people(tenant.project, ("gus", "gus@acme.com", 35), ("hal", "hal@globex.com", 1))
    assert set(CompanyMembership.objects.values_list("company_id", flat=True)) == {initech.id}


def test_merging_into_itself_another_project_or_nothing_is_400_naming_into(tenant, other_tenant, three):
    acme = company("acme.com")
    people(other_tenant.project, ("zed", "zed@umbrella.com", 1))
    for into in (acme.id, Company.objects.get(domain="umbrella.com").id, 10**12, "1"):
        response = tenant.client.post(f"/api/companies/{acme.id}/merge", {"into": into}, format="json")
        assert response.status_code == 400 and "into" in response.json()["error"]["fields"], (into, response.content)
    assert not Company.objects.filter(merged_into__isnull=False).exists()


def test_only_owners_and_admins_merge(tenant, three, member):
    # a merge cannot be undone: a member may edit a company but not merge it (as on the company page)
    acme, globex = company("acme.com"), company("globex.com")
    refused = member.post(f"/api/companies/{acme.id}/merge", {"into": globex.id}, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert not Company.objects.filter(merged_into__isnull=False).exists()
    assert tenant.client.post(f"/api/companies/{acme.id}/merge", {"into": globex.id}, format="json").status_code == 200


def csv_rows(response):
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_export_honours_model_stage_and_search(tenant, three):
    Company.objects.filter(domain="globex.com").update(name="=HYPERLINK(1)")
    rows = csv_rows(tenant.client.get("/api/companies/export"))
    assert rows[0] == ["id", "name", "domain", "key", "score", "stage", "members", "updatedAt"]
    assert [(r[2], r[4], r[5], r[6]) for r in rows[1:]] == [("acme.com", "80", "qualified", "2"),
                                                             ("initech.com", "60", "qualified", "3"),
                                                             ("globex.com", "5", "cold", "1")]  # fmt: skip
    assert rows[3][1] == "'=HYPERLINK(1)"  # formula-safe
    assert [r[2] for r in csv_rows(tenant.client.get("/api/companies/export", {"stage": "cold"}))[1:]] == ["globex.com"]
    assert [r[2] for r in csv_rows(tenant.client.get("/api/companies/export", {"search": "acme"}))[1:]] == ["acme.com"]
    ScoringModel.objects.create(project=tenant.project, key="b", name="B")
    under_b = csv_rows(tenant.client.get("/api/companies/export", {"model": "b", "ordering": "name"}))[1:]
    assert [(r[2], r[4]) for r in under_b] == [("globex.com", "0"), ("acme.com", "0"), ("initech.com", "0")]
    bad = tenant.client.get("/api/companies/export", {"stage": "boiling"})
    assert bad.status_code == 400 and bad.json()["error"]["fields"] == {"stage": ["Must be one of cold, warm, hot, "
                                                                                   "qualified."]}  # fmt: skip


def test_the_leaderboard_is_the_top_n_by_score(tenant, three):
    body = tenant.client.get("/api/companies/leaderboard", {"limit": 2}).json()
    assert body["model"] == "default"
    assert [(row["domain"], row["score"]) for row in body["results"]] == [("acme.com", 80), ("initech.com", 60)]
    assert tenant.client.get("/api/companies/leaderboard", {"limit": 0}).status_code == 400


def test_settings_default_to_todays_roll_up(tenant):
    body = tenant.client.get("/api/companies/settings").json()
    assert body == {"model": "default", "topN": 3, "breadthPoints": 10, "breadthCap": 5, "windowDays": 30,
                    "fitRules": [], "thresholds": None, "updatedAt": None}  # fmt: skip


def test_changing_the_settings_recomputes_the_companies_with_them(tenant, three, member):
    body = {"topN": 1, "breadthPoints": 0, "breadthCap": 0, "windowDays": 7,
            "fitRules": [{"points": 100, "conditions": [{"path": "plan", "op": "in", "value": ["pro"]}]}],
            "thresholds": {"warm": 10, "hot": 50, "qualified": 200}}  # fmt: skip
    Company.objects.filter(domain="globex.com").update(traits={"plan": "pro"})

    assert member.put("/api/companies/settings", body, format="json").status_code == 403
    response = tenant.client.put("/api/companies/settings", body, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["thresholds"] == {"warm": 10, "hot": 50, "qualified": 200}
    condition = {"path": "plan", "op": "in", "value": ["pro"]}
    assert response.json()["fitRules"] == [{"name": "", "points": 100, "conditions": [condition]}]
    scores = {row["domain"]: (row["score"], row["stage"]) for row in
              tenant.client.get("/api/companies").json()["results"]}  # fmt: skip
    assert scores == {"acme.com": (40, "warm"), "initech.com": (25, "warm"), "globex.com": (105, "hot")}
    assert tenant.client.get("/api/companies/settings").json()["topN"] == 1

    # another model's settings are its own; thresholds back to the model's
    ScoringModel.objects.create(project=tenant.project, key="b", name="B")
    assert tenant.client.get("/api/companies/settings", {"model": "b"}).json()["topN"] == 3
    response = tenant.client.put("/api/companies/settings", {**body, "thresholds": None}, format="json")
    assert response.json()["thresholds"] is None
    assert CompanyScore.objects.get(company__domain="globex.com", model__key="default").stage == "qualified"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"topN": -1}, "topN"),
        ({"windowDays": "30"}, "windowDays"),
        ({"thresholds": {"warm": 50, "hot": 20, "qualified": 90}}, "thresholds"),
        ({"fitRules": [{"points": 5, "conditions": []}]}, "fitRules"),
        ({"fitRules": [{"points": 5, "conditions": [{"path": "plan", "op": "near", "value": 1}]}]}, "fitRules"),
        ({"fitRules": [{"points": 5, "conditions": [{"path": "plan", "op": "eq", "value": "x"}], "x": 1}]},
         "fitRules"),
        ({"window": 3}, "window"),
    ],
)  # fmt: skip
def test_bad_settings_are_400_naming_the_field_and_store_nothing(tenant, change, field):
    body = {"topN": 3, "breadthPoints": 10, "breadthCap": 5, "windowDays": 30, **change}
    response = tenant.client.put("/api/companies/settings", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert any(name.startswith(field) for name in error["fields"]) and error["message"].startswith(field), error
    assert tenant.client.get("/api/companies/settings").json()["updatedAt"] is None


def test_a_bad_conditions_error_names_the_exact_path(tenant):
    body = {"topN": 3, "breadthPoints": 10, "breadthCap": 5, "windowDays": 30,
            "fitRules": [{"points": 5, "conditions": [{"path": "plan", "op": "near", "value": 1}]}]}  # fmt: skip
    error = tenant.client.put("/api/companies/settings", body, format="json").json()["error"]
    assert error["message"].startswith("fitRules[0].conditions[0].op"), error


def test_many_companies_are_recomputed_by_a_task_after_commit(tenant, three, monkeypatch,
                                                               django_capture_on_commit_callbacks):  # fmt: skip
    sent = []
    monkeypatch.setattr(services, "RECOMPUTE_INLINE_LIMIT", 2)
    monkeypatch.setattr(services.app, "send_task", lambda name, kwargs=None, **_: sent.append((name, kwargs)))
    body = {"topN": 1, "breadthPoints": 0, "breadthCap": 0, "windowDays": 30}

    with django_capture_on_commit_callbacks(execute=True):
        assert tenant.client.put("/api/companies/settings", body, format="json").status_code == 200
    assert sent == [(services.PROJECT_RECOMPUTE_TASK, {"project_id": tenant.project.id})]
    assert CompanyScore.objects.get(company__domain="acme.com").score == 80  # not yet

    celery_app.loader.import_default_modules()
    assert celery_app.tasks[services.PROJECT_RECOMPUTE_TASK](**sent[0][1]) == 3
    assert dict(CompanyScore.objects.values_list("company__domain", "score")) == {
        "acme.com": 40, "initech.com": 25, "globex.com": 5}  # fmt: skip


def test_editing_a_leads_email_through_the_api_re_homes_it(tenant, three, monkeypatch,
                                                            django_capture_on_commit_callbacks):  # fmt: skip
    """PATCH /api/leads/{id} hands the edit to companies (the message scoring sends after commit, run by the task
    registered under its name, as a worker would)."""
    sent = []
    monkeypatch.setattr("core.pipeline.app.send_task", lambda name, kwargs=None, **_: sent.append((name, kwargs)))
    ann = Lead.objects.get(anonymous_id="ann")

    with django_capture_on_commit_callbacks(execute=True):
        response = tenant.client.patch(f"/api/leads/{ann.id}", {"email": "ann@globex.com"}, format="json")
    assert response.status_code == 200

    celery_app.loader.import_default_modules()
    messages = sent_to(COMPANY_LEAD_CHANGES_TASK, sent)
    assert len(messages) == 1
    assert celery_app.tasks[COMPANY_LEAD_CHANGES_TASK](**messages[0]) == 2  # acme and globex, both recomputed
    assert CompanyMembership.objects.get(lead=ann).company_id == company("globex.com").id
    assert dict(CompanyScore.objects.filter(company__domain__in=["acme.com", "globex.com"]).values_list(
        "company__domain", "score")) == {"acme.com": 20 + 10, "globex.com": 40 + 5 + 10}  # fmt: skip
