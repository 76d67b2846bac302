"""Companies' reads on PostgreSQL: scoped to the project, under a model, in a constant number of queries."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from companies.models import Company
from companies.selectors import companies_for_project, company_for_project, company_members, lead_companies
from companies.services import lead_changes_consume
from core.contracts import LeadChange
from core.errors import ApplicationError, NotFound
from ingest.models import Lead
from scoring.models import LeadScore, ScoringModel
from scoring.selectors import leads_results

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def people(project, *specs):
    """specs: (anonymous id, email, primary score); returns the leads, assigned and rolled up."""
    leads = [
        Lead.objects.create(project=project, anonymous_id=name, email=email, current_score=score,
                            lead_stage="cold" if score < 11 else "warm" if score < 31 else "hot", last_event_at=NOW)
        for name, email, score in specs
    ]  # fmt: skip
    lead_changes_consume(
        changes=[
            LeadChange(kind="scored", project_id=project.id, lead_id=lead.id, old_score=0, new_score=0,
                       old_stage="cold", new_stage="cold")
            for lead in leads
        ]
    )  # fmt: skip
    return leads


@pytest.fixture
def acme_globex(tenant):
    return people(
        tenant.project,
        ("ann", "ann@acme.com", 40),
        ("bob", "bob@acme.com", 20),
        ("cy", "cy@globex.com", 5),
        ("dee", "dee@gmail.com", 90),
    )


def test_the_list_scores_stages_and_counts_members_under_the_primary_model(tenant, acme_globex, other_tenant,
                                                                           django_assert_num_queries):  # fmt: skip
    people(other_tenant.project, ("zed", "zed@acme.com", 70))
    with django_assert_num_queries(2):
        rows = [(c.domain, c.score, c.stage, c.member_count) for c in companies_for_project(project=tenant.project)]
    # acme: 40 + 20, breadth 2 x 10; globex: 5 (cold, not engaged)
    assert rows == [("acme.com", 80, "qualified", 2), ("globex.com", 5, "cold", 1)]


def test_the_list_filters_searches_and_sorts(tenant, acme_globex):
    def domains(**kwargs):
        return [c.domain for c in companies_for_project(project=tenant.project, **kwargs)]

    assert domains(stage="cold") == ["globex.com"]
    assert domains(search="GLOB") == ["globex.com"] and domains(search="nothing") == []
    assert domains(ordering="score") == ["globex.com", "acme.com"]
    assert domains(ordering="name") == ["acme.com", "globex.com"]
    assert domains(ordering="-members") == ["acme.com", "globex.com"]
    assert domains(ordering="members") == ["globex.com", "acme.com"]
    with pytest.raises(ApplicationError) as refused:
        domains(ordering="size")
    assert refused.value.field == "ordering"
    with pytest.raises(ApplicationError) as refused:
        domains(stage="lukewarm")
    assert refused.value.field == "stage"


def test_another_model_gives_its_scores(tenant, acme_globex, django_assert_num_queries):
    other = ScoringModel.objects.create(project=tenant.project, key="b", name="B")
    cy = acme_globex[2]
    LeadScore.objects.create(project=tenant.project, lead=cy, model=other, score=50, stage="hot", updated_at=NOW)
    lead_changes_consume(
        changes=[LeadChange(kind="scored", project_id=tenant.project.id, lead_id=cy.id, old_score=0, new_score=0,
                            old_stage="cold", new_stage="cold")]
    )  # fmt: skip
    with django_assert_num_queries(1):
        rows = [(c.domain, c.score, c.stage) for c in companies_for_project(project=tenant.project, model=other)]
    assert rows == [("globex.com", 60, "qualified"), ("acme.com", 0, "cold")]  # acme not rolled up under b yet
    globex = Company.objects.get(domain="globex.com")
    with django_assert_num_queries(1):
        members = [(m.id, m.member_score, m.member_stage)
                   for m in company_members(project=tenant.project, company_id=globex.id, model=other)]  # fmt: skip
    assert members == [(cy.id, 50, "hot")]


def test_one_company_with_breakdown_and_its_members_best_first(tenant, acme_globex, django_assert_num_queries):
    ann, bob, *_ = acme_globex
    acme = Company.objects.get(domain="acme.com")
    with django_assert_num_queries(2):
        company = company_for_project(project=tenant.project, company_id=str(acme.id))
    assert (company.score, company.stage, company.member_count) == (80, "qualified", 2)
    assert company.breakdown["contributions"] == {str(ann.id): 50, str(bob.id): 30}
    with django_assert_num_queries(2):
        members = [(m.id, m.member_score, m.member_stage) for m in company_members(project=tenant.project,
                                                                                     company_id=acme.id)]  # fmt: skip
    assert members == [(ann.id, 40, "hot"), (bob.id, 20, "warm")]


def test_another_projects_company_or_a_bad_id_is_not_found(tenant, other_tenant, acme_globex):
    acme = Company.objects.get(domain="acme.com")
    for company_id in (acme.id, "x", 10**30, None):
        with pytest.raises(NotFound):
            company_for_project(project=other_tenant.project, company_id=company_id)
    assert list(company_members(project=other_tenant.project, company_id=acme.id)) == []


def test_lead_companies_in_one_query(tenant, acme_globex, django_assert_num_queries):
    ann, _bob, cy, dee = acme_globex
    acme, globex = Company.objects.get(domain="acme.com"), Company.objects.get(domain="globex.com")
    with django_assert_num_queries(1):
        found = lead_companies(project=tenant.project, lead_ids=[ann.id, cy.id, dee.id])
    assert found == {ann.id: (acme.id, "acme.com", "acme.com"), cy.id: (globex.id, "globex.com", "globex.com")}


def test_members_results_keep_the_last_event_time_to_the_microsecond(tenant, other_tenant):
    # given: leads whose last events differ by a microsecond, one never active, one of another project
    at = datetime(2026, 11, 1, 12, 34, 56, 789123, tzinfo=UTC)
    times = [at, at + timedelta(microseconds=1), datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), None]
    leads = [Lead.objects.create(project=tenant.project, anonymous_id=f"t{i}", last_event_at=when, current_score=i)
             for i, when in enumerate(times)]  # fmt: skip
    stranger = Lead.objects.create(project=other_tenant.project, anonymous_id="x", last_event_at=at)
    # when
    results = leads_results(project_id=tenant.project.id, lead_ids=[lead.id for lead in leads] + [stranger.id])
    # then
    assert results.active_at == {lead.id: when for lead, when in zip(leads, times, strict=True)}
    assert results.scores == {(lead.id, results.primary): i for i, lead in enumerate(leads)}
