"""Companies fed by scoring's lead changes, on PostgreSQL: assignment, re-homing, erasure, coalescing.

Events go in through ingest and are scored by scoring's real services; what scoring hands over
after commit is taken from the broker's door (`send_task`, Celery's, not ours) and run by the
task registered under its name, as a worker would.
"""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from companies.models import Company, CompanyMembership, CompanyScore, CompanyScoreHistory
from companies.services import lead_changes_consume
from core.contracts import COMPANY_LEAD_CHANGES_TASK, LeadChange
from core.pipeline import project_listens
from ingest.models import Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from leadpulse.celery import app as celery_app
from scoring.models import LeadScore, ScoringModel, ScoringRule
from scoring.services import lead_erase, lead_score, lead_update, leads_score
from tests.handover import sent_to

pytestmark = pytest.mark.django_db


@pytest.fixture
def handed_over(monkeypatch):
    """The messages scoring sends after commit, by task name (nothing reaches a broker)."""
    sent: list[tuple[str, dict]] = []
    monkeypatch.setattr("core.pipeline.app.send_task", lambda name, kwargs=None, **_: sent.append((name, kwargs)))
    return sent


@pytest.fixture
def pipeline(handed_over, django_capture_on_commit_callbacks):
    """Score leads with scoring's services, then deliver companies' messages to their task (and run its commit's
    callbacks)."""

    celery_app.loader.import_default_modules()  # what a worker does as it starts: every app's tasks registered

    def run(*lead_ids: int, batch: bool = False, first=None) -> int:
        handed_over.clear()
        with django_capture_on_commit_callbacks(execute=True):
            if first is not None:
                first()
            if batch:
                leads_score(lead_ids=lead_ids)
            else:
                for lead_id in lead_ids:
                    lead_score(lead_id=lead_id)
        messages = sent_to(COMPANY_LEAD_CHANGES_TASK, handed_over)
        with django_capture_on_commit_callbacks(execute=True):  # what companies send and broadcast after commit
            return sum(celery_app.tasks[COMPANY_LEAD_CHANGES_TASK](**kwargs) for kwargs in messages)

    return run


NOW = timezone.now().replace(microsecond=0)


def ingest(project, anonymous_id, *events) -> int:
    """events: (type, name, properties) or a track event's name; returns the lead's id."""
    events_ingest(
        project_id=project.id,
        events=[
            CanonicalEvent(
                event_id=f"{anonymous_id}-{i}-{NOW.timestamp()}", anonymous_id=anonymous_id,
                timestamp=NOW - timedelta(minutes=len(events) - i),
                **({"type": e[0], "name": e[1], "properties": e[2]} if isinstance(e, tuple) else {"name": e}),
            )
            for i, e in enumerate(events)
        ],
    )  # fmt: skip
    return Lead.objects.get(project=project, anonymous_id=anonymous_id).id


def identify(traits):
    return ("identify", "identify", traits)


def group(group_id, **traits):
    return ("group", "group", {"groupId": group_id, **traits})


def company_of(lead_id):
    membership = CompanyMembership.objects.filter(lead_id=lead_id).select_related("company").first()
    return membership.company if membership else None


def primary_score(company):
    return CompanyScore.objects.get(company=company, model__is_primary=True)


def test_identify_with_a_work_email_puts_the_lead_in_its_company(tenant, pipeline):
    lead = ingest(tenant.project, "ann", identify({"email": "ann@eu.acme.co.uk", "name": "Ann"}), "signup")

    assert pipeline(lead) == 1

    company = company_of(lead)
    assert (company.project, company.key, company.domain) == (tenant.project, "acme.co.uk", "acme.co.uk")
    score = primary_score(company)
    assert (score.score, score.stage) == (30 + 10, "hot")  # her 30 (warm, active today) + 10 breadth
    assert score.breakdown["contributions"] == {str(lead): 40} and score.breakdown["movedBy"] == lead


@pytest.mark.parametrize("email", ["ann@gmail.com", "ann@mailinator.com"])
def test_free_mail_and_disposable_addresses_make_no_company(tenant, pipeline, email):
    lead = ingest(tenant.project, "ann", identify({"email": email}), "signup")
    assert pipeline(lead) == 0
    assert company_of(lead) is None and not Company.objects.exists()


def test_a_group_call_wins_and_brings_the_companys_traits(tenant, pipeline):
    lead = ingest(tenant.project, "ann", identify({"email": "ann@acme.com"}),
                  group("acct-9", name="Acme", industry="software", employees=250, plan="pro"))  # fmt: skip
    pipeline(lead)
    company = company_of(lead)
    assert (company.key, company.name) == ("group:acct-9", "Acme")
    assert company.traits == {"name": "Acme", "industry": "software", "employees": 250, "plan": "pro"}
    assert Company.objects.count() == 1


def test_a_later_group_call_adds_to_the_companys_traits_and_one_without_traits_keeps_them(tenant, pipeline):
    ann = ingest(tenant.project, "ann", group("acct-9", name="Acme", industry="software", plan="free"))
    pipeline(ann)
    bob = ingest(tenant.project, "bob", group("acct-9", plan="pro", employees=250))
    pipeline(bob)
    cy = ingest(tenant.project, "cy", group("acct-9"))
    pipeline(cy)
    company = company_of(ann)
    assert company_of(bob) == company_of(cy) == company
    assert company.traits == {"name": "Acme", "industry": "software", "plan": "pro", "employees": 250}


def test_a_name_given_later_keeps_the_companys_traits(tenant, pipeline):
    ann = ingest(tenant.project, "ann", group("acct-9", industry="software"))  # no name yet
    pipeline(ann)
    assert (company_of(ann).name, company_of(ann).traits) == ("", {"industry": "software"})
    bob = ingest(tenant.project, "bob", identify({"company": "Acme Inc"}), group("acct-9"))  # a name, no traits
    pipeline(bob)
    company = company_of(bob)
    assert company == company_of(ann)
    assert (company.name, company.traits) == ("Acme Inc", {"industry": "software"})


def test_three_leads_below_hot_make_their_company_hot(tenant, pipeline):
    leads = [ingest(tenant.project, name, identify({"email": f"{name}@acme.com"}), "email_open", "page_view")
             for name in ("ann", "bob", "cy")]  # fmt: skip
    pipeline(*leads)
    assert set(Lead.objects.filter(id__in=leads).values_list("lead_stage", flat=True)) == {"warm"}  # 15 each
    score = primary_score(company_of(leads[0]))
    assert (score.score, score.stage) == (3 * 15 + 3 * 10, "qualified")
    assert CompanyMembership.objects.filter(company=company_of(leads[0])).count() == 3
    assert company_of(leads[0]).name == "acme.com"

    later = ingest(tenant.project, "dee", identify({"email": "dee@acme.com", "company": "Acme Inc"}))
    pipeline(later)
    assert company_of(later).name == "Acme Inc"  # a name replaces the domain the company started with


def test_a_later_group_call_re_homes_the_lead_and_rescores_both_companies(tenant, pipeline):
    ann = ingest(tenant.project, "ann", identify({"email": "ann@acme.com"}), "signup")
    bob = ingest(tenant.project, "bob", identify({"email": "bob@acme.com"}), "page_view")
    pipeline(ann, bob)
    acme = company_of(ann)
    assert primary_score(acme).score == 30 + 5 + 10

    events_ingest(project_id=tenant.project.id, events=[CanonicalEvent(
        event_id="ann-group", name="group", type="group", anonymous_id="ann", timestamp=NOW,
        properties={"groupId": "parent", "name": "Acme Holding"})])  # fmt: skip
    pipeline(ann)

    holding = company_of(ann)
    assert holding.key == "group:parent" and company_of(bob) == acme
    assert (primary_score(acme).score, primary_score(acme).breakdown["movedBy"]) == (5, ann)
    assert primary_score(holding).score == 40


def test_editing_a_leads_email_re_homes_it(tenant, pipeline):
    ann = ingest(tenant.project, "ann", identify({"email": "ann@acme.com"}), "signup")
    pipeline(ann)
    acme = company_of(ann)

    # the edit asks for a re-score, which moves nothing here: the edit itself tells companies
    assert pipeline(first=lambda: lead_update(lead=Lead.objects.get(id=ann), data={"email": "ann@globex.com"})) == 2

    assert company_of(ann).key == "globex.com"
    assert (primary_score(acme).score, primary_score(company_of(ann)).score) == (0, 40)

    pipeline(first=lambda: lead_update(lead=Lead.objects.get(id=ann), data={"email": "ann@gmail.com"}))
    assert company_of(ann) is None and CompanyScore.objects.filter(score=0).count() == 2


def test_erasing_a_lead_removes_it_from_its_company_and_rescores_it(tenant, pipeline):
    ann = ingest(tenant.project, "ann", identify({"email": "ann@acme.com"}), "signup")
    bob = ingest(tenant.project, "bob", identify({"email": "bob@acme.com"}), "page_view")
    pipeline(ann, bob)
    acme = company_of(ann)

    lead_erase(lead=Lead.objects.get(id=ann))

    assert list(CompanyMembership.objects.values_list("lead_id", flat=True)) == [bob]
    score = primary_score(acme)
    assert score.score == 5 and str(ann) not in score.breakdown["contributions"]


def test_a_merged_lead_leaves_its_company_and_the_survivor_stays(tenant, pipeline):
    crm = ingest(tenant.project, "crm", identify({"email": "ann@acme.com"}), "signup")
    pipeline(crm)
    browser = ingest(tenant.project, "browser", "page_view", identify({"email": "ann@acme.com"}))
    pipeline(browser)  # the browser's lead merges into the CRM's

    assert Lead.objects.get(id=browser).merged_into_id == crm
    assert list(CompanyMembership.objects.values_list("lead_id", flat=True)) == [crm]
    assert primary_score(company_of(crm)).score == 35 + 10


def test_every_model_gets_its_company_score(tenant, pipeline):
    other = ScoringModel.objects.create(project=tenant.project, key="b", name="B", warm_threshold=5,
                                        hot_threshold=8, qualified_threshold=12, max_score=40)  # fmt: skip
    ScoringRule.objects.create(project=tenant.project, model=other, name="views", event_type="page_view", points=3)
    ann = ingest(tenant.project, "ann", identify({"email": "ann@acme.com"}), "page_view", "page_view")
    pipeline(ann)
    assert LeadScore.objects.get(lead_id=ann, model=other).score == 6
    scores = dict(CompanyScore.objects.values_list("model__key", "score"))
    assert scores == {"default": 10, "b": 6 + 10}  # b: 6 is warm there, so ann is engaged
    assert CompanyScore.objects.get(model=other).stage == "qualified"


def test_companies_are_per_project(tenant, other_tenant, pipeline):
    ann = ingest(tenant.project, "ann", identify({"email": "ann@acme.com"}), "signup")
    bob = ingest(other_tenant.project, "bob", identify({"email": "bob@acme.com"}), "page_view")
    pipeline(ann, bob)
    assert company_of(ann) != company_of(bob)
    assert (primary_score(company_of(ann)).score, primary_score(company_of(bob)).score) == (40, 5)


def test_a_scoring_batch_of_many_members_is_one_message_and_one_recompute(tenant, pipeline, handed_over):
    leads = [ingest(tenant.project, f"p{i}", identify({"email": f"p{i}@acme.com"}), "page_view") for i in range(30)]
    with CaptureQueriesContext(connection) as queries:
        assert pipeline(*leads, batch=True) == 1
    assert len(sent_to(COMPANY_LEAD_CHANGES_TASK, handed_over)) == 1
    upserts = [
        q["sql"] for q in queries.captured_queries if q["sql"].startswith('INSERT INTO "companies_companyscore"')
    ]
    assert len(upserts) == 1
    assert CompanyMembership.objects.count() == 30 and primary_score(company_of(leads[0])).score == 3 * 5


def changes_of(leads, count):
    return [
        LeadChange(kind="scored", project_id=lead.project_id, lead_id=lead.id, old_score=0, new_score=i,
                   old_stage="cold", new_stage="cold")
        for i, lead in zip(range(count), [leads[i % len(leads)] for i in range(count)], strict=True)
    ]  # fmt: skip


def test_a_thousand_member_changes_of_one_company_cost_what_ten_do(tenant):
    for i in range(50):
        Lead.objects.create(project=tenant.project, anonymous_id=f"m{i}", email=f"m{i}@acme.com", current_score=i,
                            last_event_at=NOW if i % 2 else None)  # fmt: skip
    leads = list(Lead.objects.filter(project=tenant.project).order_by("id"))
    project_listens(project_id=tenant.project.id)
    lead_changes_consume(changes=changes_of(leads, 1))  # the company exists: both calls below find it

    with CaptureQueriesContext(connection) as few:
        lead_changes_consume(changes=changes_of(leads, 10))
    with CaptureQueriesContext(connection) as many:
        assert lead_changes_consume(changes=changes_of(leads, 1000)) == 1  # one company recomputed, once

    def writes(context):
        return [q["sql"].split(" (")[0] for q in context.captured_queries if q["sql"].startswith(("INSERT", "UPDATE"))]

    def statements(context):
        return [q["sql"] for q in context.captured_queries if "SAVEPOINT" not in q["sql"]]

    # with the models' keys and roll-up settings, and the rows of the company's history (whether automations
    # listen is cached)
    assert len(statements(many)) == len(statements(few)) <= 13
    assert writes(many).count('INSERT INTO "companies_companyscore"') == 1
    # the top three, and breadth for five (the cap) of the 20 warm members active lately (odd i >= 11)
    assert primary_score(Company.objects.get()).score == 49 + 48 + 47 + 5 * 10


def test_roll_up_rows_have_no_database_constraints_yet_deletions_cascade(tenant, pipeline):
    """Memberships, scores and history rows are written in every scoring batch: no foreign-key trigger checks each
    at commit, and Django still removes them with their lead, company or project (no orphan is left behind)."""
    ann = ingest(tenant.project, "ann", identify({"email": "ann@acme.com"}), "signup")
    bob = ingest(tenant.project, "bob", identify({"email": "bob@acme.com"}), "page_view")
    pipeline(ann, bob)
    acme = company_of(ann)
    for model in (CompanyMembership, CompanyScore, CompanyScoreHistory):
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
        assert not [name for name, c in constraints.items() if c["foreign_key"]], model.__name__
    assert CompanyScoreHistory.objects.filter(company=acme).exists()

    Lead.objects.filter(id=bob).delete()
    assert list(CompanyMembership.objects.values_list("lead_id", flat=True)) == [ann]
    acme.delete()
    assert not CompanyMembership.objects.exists() and not CompanyScore.objects.exists()
    assert not CompanyScoreHistory.objects.exists()
    lead_changes_consume(changes=changes_of([Lead.objects.get(id=ann)], 1))  # ann's company again, then the project
    assert CompanyMembership.objects.exists() and CompanyScoreHistory.objects.exists()
    tenant.project.delete()
    assert not CompanyMembership.objects.exists() and not CompanyScore.objects.exists()
    assert not CompanyScoreHistory.objects.exists() and not Company.objects.exists()
