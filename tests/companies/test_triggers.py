"""Company automation triggers: their pure decisions, the API's validation, once per rule, company and window."""

import pytest
from django.db import IntegrityError, transaction

from automations import engine, triggers
from automations.models import AutomationExecution, WebhookDelivery
from automations.services import company_change_handle, lead_deliveries_erase
from companies.models import Company
from core.contracts import CompanyChange
from ingest.models import Lead
from tests.automations.factories import AutomationRuleFactory, WebhookSubscriptionFactory


def change(old, new, *, model="default", primary=True, moved_by=None, company_id=1, project_id=1):
    return CompanyChange(
        project_id=project_id, company_id=company_id, model=model, primary=primary, old_score=old[0],
        new_score=new[0], old_stage=old[1], new_stage=new[1], moved_by=moved_by, name="Acme", domain="acme.com",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("config", "old", "new", "fired"),
    [
        ({"stage": "hot"}, (20, "warm"), (40, "hot"), {"from": "warm", "to": "hot"}),
        ({"stage": "hot"}, (20, "warm"), (70, "qualified"), {"from": "warm", "to": "qualified"}),  # passed upwards
        ({"stage": "hot"}, (40, "hot"), (45, "hot"), None),  # already there
        ({"stage": "hot"}, (70, "qualified"), (40, "hot"), None),  # down into it is not entering it upwards
        ({"stage": "cold"}, (20, "warm"), (5, "cold"), {"from": "warm", "to": "cold"}),
    ],
)
def test_company_stage_entered(config, old, new, fired):
    result = engine.company_trigger_fires("company.stage_entered", config, change(old, new))
    assert result == (None if fired is None else {"trigger": "company.stage_entered", "stage": config["stage"],
                                                  **fired})  # fmt: skip


@pytest.mark.parametrize(
    ("old", "new", "fired"), [(90, 100, {"from": 90, "to": 100}), (100, 120, None), (120, 90, None), (10, 99, None)]
)
def test_company_score_crossed_up(old, new, fired):
    result = engine.company_trigger_fires("company.score_crossed_up", {"threshold": 100},
                                          change((old, "hot"), (new, "qualified")))  # fmt: skip
    assert result == (None if fired is None else {"trigger": "company.score_crossed_up", "threshold": 100, **fired})


def test_company_triggers_watch_one_model_and_lead_triggers_never_see_company_changes():
    other = change((20, "warm"), (40, "hot"), model="b", primary=False)
    assert engine.company_trigger_fires("company.stage_entered", {"stage": "hot"}, other) is None  # primary only
    assert engine.company_trigger_fires("company.stage_entered", {"stage": "hot", "model": "b"}, other) is not None
    assert engine.company_trigger_fires("stage_entered", {"stage": "hot"}, other) is None  # a lead trigger
    assert triggers.registry.get("company.stage_entered").subject == "company"


def test_company_change_round_trips_as_its_message():
    original = change((1, "cold"), (50, "hot"), moved_by=7).with_id("abc")
    assert CompanyChange.from_message(original.to_message()) == original
    assert CompanyChange.from_message(original.to_message()).change_id == "abc"
    assert original.to_message()["movedBy"] == 7 and original.to_message()["companyId"] == 1


# --- The API ---------------------------------------------------------------------------------------------------


def rule_body(**overrides):
    return {"name": "Hot account", "trigger": "company.stage_entered", "triggerConfig": {"stage": "hot"},
            "action": "webhook", "actionConfig": {"url": "http://127.0.0.1:9/hook"}, **overrides}  # fmt: skip


@pytest.mark.django_db
def test_the_api_accepts_company_triggers_and_refuses_what_cannot_act_on_a_company(tenant):
    created = tenant.client.post("/api/automations", rule_body(), format="json")
    assert created.status_code == 201, created.content
    crossed = rule_body(trigger="company.score_crossed_up", triggerConfig={"threshold": 100, "model": "default"},
                        action="email", actionConfig={"to": [tenant.owner.email]})  # fmt: skip
    assert tenant.client.post("/api/automations", crossed, format="json").status_code == 201

    for body, field in [
        (rule_body(action="add_tag", actionConfig={"tag": "t"}), "action"),
        (rule_body(leadConditions={"stages": ["hot"]}), "leadConditions"),
        (rule_body(triggerConfig={"stage": "lukewarm"}), "triggerConfig.stage"),
        (rule_body(trigger="company.score_crossed_up", triggerConfig={"threshold": -1}), "triggerConfig.threshold"),
        (rule_body(trigger="company.score_crossed_up", triggerConfig={}), "triggerConfig.threshold"),
    ]:
        response = tenant.client.post("/api/automations", body, format="json")
        assert response.status_code == 400, body
        assert field in response.json()["error"]["fields"], (body, response.json())

    rule_id = created.json()["id"]
    patched = tenant.client.patch(f"/api/automations/{rule_id}", {"action": "set_owner",
                                  "actionConfig": {"owner": "x"}}, format="json")  # fmt: skip
    assert patched.status_code == 400 and "action" in patched.json()["error"]["fields"]


# --- Once per rule, company and window --------------------------------------------------------------------------


@pytest.fixture
def company_rule(tenant, django_capture_on_commit_callbacks):
    company = Company.objects.create(project=tenant.project, key="acme.com", domain="acme.com", name="Acme")
    member = Lead.objects.create(project=tenant.project, anonymous_id="ann", email="ann@acme.com", current_score=35)
    rule = AutomationRuleFactory(project=tenant.project, trigger="company.stage_entered",
                                 trigger_config={"stage": "hot"}, action="webhook",
                                 action_config={"url": "http://127.0.0.1:9/hook", "secret": "s"})  # fmt: skip
    return company, member, rule


@pytest.mark.django_db
def test_a_company_rule_fires_once_per_company_and_window_however_often_its_change_arrives(
    tenant, company_rule, django_capture_on_commit_callbacks
):
    company, member, rule = company_rule
    WebhookSubscriptionFactory(project=tenant.project, url="http://127.0.0.1:9/sub", events=["automation.fired"])
    hot = change((20, "warm"), (45, "hot"), moved_by=member.id, company_id=company.id, project_id=tenant.project.id)

    with django_capture_on_commit_callbacks():
        assert company_change_handle(change=hot) == 1
        assert company_change_handle(change=hot.with_id("redelivered")) == 0  # the same window
        assert company_change_handle(change=change((1, "cold"), (50, "hot"), company_id=company.id,
                                                   project_id=tenant.project.id)) == 0  # fmt: skip

    execution = AutomationExecution.objects.get()
    assert (execution.company_id, execution.lead_id, execution.rule_id) == (company.id, None, rule.id)
    assert execution.trigger == {"trigger": "company.stage_entered", "stage": "hot", "from": "warm", "to": "hot"}
    assert execution.subject["company"] == {"id": company.id, "name": "Acme", "domain": "acme.com", "score": 45,
                                            "stage": "hot", "previousScore": 20, "previousStage": "warm",
                                            "model": "default"}  # fmt: skip
    assert execution.subject["member"]["email"] == "ann@acme.com"
    [delivery] = WebhookDelivery.objects.filter(event="automation.fired")
    assert delivery.payload["data"]["company"]["id"] == company.id
    assert delivery.payload["data"]["member"]["id"] == member.id and "lead" not in delivery.payload["data"]

    # another company of the project fires on its own
    other = Company.objects.create(project=tenant.project, key="globex.com", domain="globex.com")
    with django_capture_on_commit_callbacks():
        assert company_change_handle(change=change((20, "warm"), (45, "hot"), company_id=other.id,
                                                   project_id=tenant.project.id)) == 1  # fmt: skip

    # erasing the member keeps the company's firing, without the person
    lead_deliveries_erase(project_id=tenant.project.id, lead_ids=[member.id])
    execution.refresh_from_db()
    assert execution.subject["member"] is None and execution.subject["company"]["id"] == company.id
    assert not WebhookDelivery.objects.filter(payload__data__member__id=member.id).exists()


@pytest.mark.django_db
def test_the_database_allows_one_execution_per_rule_company_and_window_and_one_subject(tenant, company_rule):
    company, member, rule = company_rule
    AutomationExecution.objects.create(project=tenant.project, rule=rule, company=company, window=5)
    for fields in ({"company": company}, {"company": company, "lead": member}, {}):
        with pytest.raises(IntegrityError), transaction.atomic():
            AutomationExecution.objects.create(project=tenant.project, rule=rule, window=5, **fields)
    AutomationExecution.objects.create(project=tenant.project, rule=rule, company=company, window=6)
    AutomationExecution.objects.create(project=tenant.project, rule=rule, lead=member, window=5)


@pytest.mark.django_db
def test_another_projects_company_change_fires_none_of_this_projects_rules(tenant, other_tenant, company_rule):
    company, _member, _rule = company_rule
    foreign = change((20, "warm"), (45, "hot"), company_id=company.id, project_id=other_tenant.project.id)
    assert company_change_handle(change=foreign) == 0
    assert not AutomationExecution.objects.exists()
