"""Company score history, the company change handed to automations, the live update, on PostgreSQL and Redis.

Events go in through ingest and are scored by scoring's real services; companies' messages are run by
their registered tasks (see `test_services.pipeline`); broadcasts are read from the real channel layer.
"""

import asyncio
import itertools
import threading
import time

import pytest
from channels.layers import get_channel_layer
from django.core.cache import cache
from django.db import connection, connections, transaction
from django.utils import timezone

from companies.models import CompanyMembership, CompanyScore, CompanyScoreHistory
from companies.selectors import company_history
from companies.services import companies_recompute, lead_changes_consume
from core.contracts import COMPANY_CHANGES_TASK, CompanyChange, LeadChange
from core.errors import NotFound
from core.realtime import project_group
from ingest.models import Lead
from scoring.models import ScoringModel, ScoringRule
from scoring.services import lead_erase
from tests.automations.factories import AutomationRuleFactory
from tests.companies.test_services import company_of, group, identify, ingest, primary_score

pytestmark = pytest.mark.django_db


def chain(company, model=None):
    rows = CompanyScoreHistory.objects.filter(company=company)
    rows = rows.filter(model=model) if model else rows.filter(model__is_primary=True)
    return list(rows.order_by("id"))


def test_the_history_chain_ends_at_the_current_score_and_names_the_member_that_moved_it(tenant, pipeline):
    ann = ingest(tenant.project, "ann", identify({"email": "ann@acme.com"}), "signup")
    pipeline(ann)
    bob = ingest(tenant.project, "bob", identify({"email": "bob@acme.com"}), "page_view")
    pipeline(bob)
    ingest(tenant.project, "ann", identify({"email": "ann@acme.com"}), "signup", "demo_request")  # one new event
    pipeline(ann)
    acme = company_of(ann)

    rows = chain(acme)
    assert [(r.old_score, r.new_score, r.delta, r.moved_by_id) for r in rows] == [
        (0, 40, 40, ann),  # ann: 30, engaged: +10
        (40, 45, 5, bob),  # bob: 5, not engaged
        (45, 95, 50, ann),  # ann: 80
    ]
    assert [(r.old_stage, r.new_stage) for r in rows] == [("cold", "hot"), ("hot", "hot"), ("hot", "qualified")]
    assert all(earlier.new_score == later.old_score for earlier, later in itertools.pairwise(rows))
    assert {r.reason for r in rows} == {"member"} and {r.project_id for r in rows} == {tenant.project.id}
    current = primary_score(acme)
    assert (rows[-1].new_score, rows[-1].new_stage) == (current.score, current.stage)

    # a recompute that moves nothing writes no row
    companies_recompute(company_ids=[acme.id])
    assert len(chain(acme)) == 3


def test_erasing_a_member_writes_an_erase_row_and_keeps_the_chain(tenant, pipeline):
    ann = ingest(tenant.project, "ann", identify({"email": "ann@acme.com"}), "signup")
    bob = ingest(tenant.project, "bob", identify({"email": "bob@acme.com"}), "page_view")
    pipeline(ann, bob, batch=True)
    acme = company_of(ann)
    assert len(chain(acme)) == 1  # one batch, one recompute

    lead_erase(lead=Lead.objects.get(id=ann))

    last = chain(acme)[-1]
    assert (last.old_score, last.new_score, last.reason) == (45, 5, "erase")
    assert last.moved_by_id is None  # ann moved it, and is erased: the row stays, without her id
    assert last.new_score == primary_score(acme).score


def test_every_model_has_its_own_chain(tenant, pipeline):
    other = ScoringModel.objects.create(project=tenant.project, key="b", name="B", warm_threshold=5,
                                        hot_threshold=8, qualified_threshold=12, max_score=40)  # fmt: skip
    ScoringRule.objects.create(project=tenant.project, model=other, name="views", event_type="page_view", points=3)
    ann = ingest(tenant.project, "ann", identify({"email": "ann@acme.com"}), "page_view", "page_view")
    pipeline(ann)
    acme = company_of(ann)

    assert [(r.new_score, r.new_stage) for r in chain(acme, other)] == [(16, "qualified")]
    assert [(r.new_score, r.new_stage) for r in chain(acme)] == [(10, "cold")]
    assert {r.model_id for r in company_history(project=tenant.project, company_id=acme.id)} == {
        other.id, ScoringModel.objects.get(project=tenant.project, is_primary=True).id,
    }  # fmt: skip
    assert [r.model_id for r in company_history(project=tenant.project, company_id=acme.id, model=other)] == [other.id]


def test_company_history_is_newest_first_limited_and_scoped_to_the_project(tenant, other_tenant, pipeline):
    ann = ingest(tenant.project, "ann", identify({"email": "ann@acme.com"}), "signup")
    pipeline(ann)
    ingest(tenant.project, "ann", identify({"email": "ann@acme.com"}), "signup", "page_view")  # one new event
    pipeline(ann)
    acme = company_of(ann)

    rows = company_history(project=tenant.project, company_id=acme.id)
    assert [r.new_score for r in rows] == [45, 40]
    assert [r.new_score for r in company_history(project=tenant.project, company_id=acme.id, limit=1)] == [45]
    for project, company_id in ((other_tenant.project, acme.id), (tenant.project, "x"), (tenant.project, 10**9)):
        with pytest.raises(NotFound):
            company_history(project=project, company_id=company_id)


def company_messages(handed_over):
    return [kwargs for name, kwargs in handed_over if name == COMPANY_CHANGES_TASK]


def test_company_changes_go_to_automations_after_commit_only_for_projects_that_listen(
    tenant, pipeline, handed_over, django_capture_on_commit_callbacks
):
    ann = ingest(tenant.project, "ann", identify({"email": "ann@acme.com", "company": "Acme"}), "signup")
    pipeline(ann)
    assert primary_score(company_of(ann)).score == 40
    assert not company_messages(handed_over)  # nobody listens: no task

    AutomationRuleFactory(project=tenant.project, trigger="company.stage_entered", trigger_config={"stage": "hot"},
                          action="webhook", action_config={"url": "https://example.com/h"})  # fmt: skip
    cache.clear()  # whether the project listens is cached (the API's create clears it after commit)
    bob = Lead.objects.create(project=tenant.project, anonymous_id="bob", email="bob@acme.com", current_score=50,
                              lead_stage="warm", last_event_at=timezone.now()).id  # as scoring leaves it  # fmt: skip
    handed_over.clear()
    with django_capture_on_commit_callbacks() as callbacks:
        lead_changes_consume(changes=[LeadChange("scored", tenant.project.id, bob, 0, 50, "cold", "warm")])
        assert not company_messages(handed_over)  # not before commit
    for callback in callbacks:
        callback()

    [message] = company_messages(handed_over)
    [change] = [CompanyChange.from_message(m) for m in message["changes"]]
    acme = company_of(ann)
    assert change == CompanyChange(
        project_id=tenant.project.id, company_id=acme.id, model="default", primary=True, old_score=40, new_score=100,
        old_stage="hot", new_stage="qualified", moved_by=bob, reason="member", name="Acme", domain="acme.com",
    )  # fmt: skip
    assert change.change_id and CompanyChange.from_message(change.to_message()).change_id == change.change_id


@pytest.fixture
def project_group_messages(tenant):
    """Read what the project's WebSocket group receives (the real channel layer)."""
    layer = get_channel_layer()
    loop = asyncio.new_event_loop()

    async def subscribe():
        channel = await layer.new_channel()
        await layer.group_add(project_group(tenant.project.id), channel)
        return channel

    channel = loop.run_until_complete(subscribe())

    def received(*, wait: float = 1.0) -> list[dict]:
        messages = []
        while True:
            try:
                messages.append(loop.run_until_complete(asyncio.wait_for(layer.receive(channel), timeout=wait)))
            except TimeoutError:
                return messages
            wait = 0.3

    yield received
    loop.run_until_complete(layer.group_discard(project_group(tenant.project.id), channel))
    loop.close()


def test_a_burst_of_a_thousand_member_events_is_one_recompute_one_history_row_and_one_broadcast(
    tenant, pipeline, project_group_messages
):
    leads = [ingest(tenant.project, name, identify({"email": f"{name}@acme.com"}),
                    *(["page_view", "email_open"] * 125)) for name in ("ann", "bob", "cy", "dee")]  # fmt: skip
    project_group_messages(wait=0.3)  # what ingest broadcast

    assert pipeline(*leads, batch=True) == 1  # one company recomputed, once

    acme = company_of(leads[0])
    assert len(chain(acme)) == 1 and CompanyScoreHistory.objects.count() == 1
    updates = [m for m in project_group_messages() if m["event"] == "company.updated"]
    assert len(updates) == 1
    [shown] = updates[0]["payload"]["companies"]
    score = primary_score(acme)
    assert (shown["id"], shown["domain"], shown["score"], shown["stage"]) == (
        acme.id,
        "acme.com",
        score.score,
        "qualified",
    )
    assert shown["scores"]["default"]["previousScore"] == 0 and shown["movedBy"] in leads


def test_merging_leads_of_two_companies_rescores_both(tenant, pipeline):
    crm = ingest(tenant.project, "crm", identify({"email": "ann@acme.com"}), "signup")
    browser = ingest(tenant.project, "browser", group("globex-1", name="Globex"), "demo_request")
    pipeline(crm, browser)
    acme, globex = company_of(crm), company_of(browser)
    assert (primary_score(acme).score, primary_score(globex).score) == (40, 60)

    # one new event: the same person, so the browser's lead merges into the CRM's
    ingest(
        tenant.project, "browser", group("globex-1", name="Globex"), "demo_request", identify({"email": "ann@acme.com"})
    )
    pipeline(browser)

    assert Lead.objects.get(id=browser).merged_into_id == crm
    # the survivor carries the browser's group call, which wins over the email's domain: it moves to Globex
    assert list(CompanyMembership.objects.values_list("lead_id", "company_id")) == [(crm, globex.id)]
    assert primary_score(acme).score == chain(acme)[-1].new_score == 0
    assert primary_score(globex).score == chain(globex)[-1].new_score == 30 + 50 + 10
    assert (chain(acme)[-1].moved_by_id, chain(globex)[-1].moved_by_id) == (crm, crm)


@pytest.mark.django_db(transaction=True)
def test_an_assignment_racing_an_erase_leaves_no_membership_for_the_erased_lead(tenant):
    lead = Lead.objects.create(project=tenant.project, anonymous_id="ann", email="ann@acme.com", current_score=20)
    erasing, erased = threading.Event(), threading.Event()

    def erase():
        try:
            with transaction.atomic():
                lead_erase(lead=lead)
                erasing.set()
                erased.wait(10)  # hold the erase open while the assignment runs
        finally:
            connections.close_all()

    def assign():
        try:
            lead_changes_consume(changes=[LeadChange("scored", tenant.project.id, lead.id, 0, 20, "cold", "warm")])
        finally:
            connections.close_all()

    eraser = threading.Thread(target=erase)
    eraser.start()
    assert erasing.wait(10)
    assigner = threading.Thread(target=assign)
    assigner.start()
    # the assignment waits for the erase's lock on the lead
    with connection.cursor() as cursor:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
                           ["%FOR KEY SHARE%"])  # fmt: skip
            if cursor.fetchone()[0]:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the assignment did not wait for the erase")
    erased.set()
    eraser.join(10)
    assigner.join(10)

    assert not Lead.objects.filter(id=lead.id).exists()
    assert not CompanyMembership.objects.exists()
    assert not CompanyScore.objects.exists()
