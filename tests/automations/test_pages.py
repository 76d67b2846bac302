"""The automations & webhooks page: scoping, writes through the page, 403s, replay, query budget."""

from unittest import mock

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Membership
from automations import services
from automations.models import AutomationRule, WebhookDelivery, WebhookSubscription
from core.models import FailedJob
from ingest.services import lead_create
from tests.accounts.factories import UserFactory
from tests.automations.factories import AutomationExecutionFactory

pytestmark = pytest.mark.django_db
HOOK = "http://127.0.0.1:9/hook"
REPLAY = {"task": "automations.webhook_replay_task", "kwargs": {"delivery_id": 0}}
RULE = {
    "name": "Hot leads to sales",
    "trigger": "stage_entered",
    "trigger_config": '{"stage": "hot"}',
    "lead_conditions": "{}",
    "action": "add_tag",
    "action_config": '{"tag": "hot-lead"}',
    "cooldown_seconds": "3600",
    "is_active": "on",
}


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def member_of(project, role="member"):
    user = UserFactory()
    Membership.objects.create(user=user, project=project, role=role)
    return user


def rule_for(project, name="Rule", **extra):
    data = {"name": name, "trigger": "stage_entered", "trigger_config": {"stage": "hot"}, "action": "add_tag",
            "action_config": {"tag": "t"}, **extra}  # fmt: skip
    return services.automation_create(project=project, data=data)


def activity(project, n):
    """n rules, each fired for n leads; n subscriptions with a delivery each; n failed jobs."""
    for i in range(n):
        rule = rule_for(project, name=f"Rule {project.id}-{i}-{timezone.now().timestamp()}")
        for j in range(n):
            lead, _ = lead_create(project_id=project.id, anonymous_id=f"{rule.id}-lead-{j}")
            AutomationExecutionFactory(rule=rule, lead=lead, status="succeeded", attempts=1, response_code=200)
        subscription = services.webhook_subscribe(project=project, url=f"{HOOK}/{rule.id}", events=["lead.updated"])
        services.webhook_test_send(subscription=subscription)
        FailedJob.objects.create(project=project, kind="webhook.delivery", reference=f"ref-{rule.id}",
                                 payload=REPLAY)  # fmt: skip


def test_page_shows_only_the_current_projects_rules_hooks_deliveries_and_dead_letters(tenant, other_tenant):
    # given
    rule = rule_for(tenant.project, name="Mine", action="webhook", action_config={"url": HOOK})
    lead, _ = lead_create(project_id=tenant.project.id, anonymous_id="visitor-7", email="seen@x.io")
    AutomationExecutionFactory(
        rule=rule, lead=lead, status="failed", attempts=3, response_code=502, error="Bad gateway"
    )
    services.webhook_subscribe(project=tenant.project, url=f"{HOOK}/mine", events=["lead.updated"])
    FailedJob.objects.create(project=tenant.project, kind="webhook.delivery", reference="mine-ref", payload={})
    other_rule = rule_for(other_tenant.project, name="Theirs-rule")
    other_hook = services.webhook_subscribe(project=other_tenant.project, url=f"{HOOK}/theirs", events=["lead.merged"])
    services.webhook_test_send(subscription=other_hook)
    FailedJob.objects.create(project=other_tenant.project, kind="webhook.delivery", reference="theirs-ref", payload={})
    # when
    page = browser(tenant.owner).get("/automations/")
    # then
    html = page.content.decode()
    assert page.status_code == 200
    assert "Mine" in html and f"{HOOK}/mine" in html and "mine-ref" in html
    assert "seen@x.io" in html and "Bad gateway" in html and "502" in html and f"/leads/{lead.id}/" in html
    assert rule.action_config["secret"] not in html  # an automation's signing secret is never shown again
    assert "Theirs-rule" not in html and f"{HOOK}/theirs" not in html and "theirs-ref" not in html
    assert other_hook.secret not in html and f'data-rule-id="{other_rule.id}"' not in html


def test_execution_log_shows_the_latest_20_per_rule(tenant):
    rule = rule_for(tenant.project)
    for j in range(25):
        lead, _ = lead_create(project_id=tenant.project.id, anonymous_id=f"lead-{j:02d}")
        AutomationExecutionFactory(rule=rule, lead=lead)
    html = browser(tenant.owner).get("/automations/").content.decode()
    assert "lead-24" in html and "lead-05" in html and "lead-04" not in html


def test_create_toggle_and_delete_a_rule_through_the_page(tenant):
    client = browser(tenant.owner)
    created = client.post("/automations/rules/", RULE)
    assert created.status_code == 302
    rule = AutomationRule.objects.get(project=tenant.project)
    assert (rule.name, rule.trigger_config, rule.action_config) == (
        "Hot leads to sales",
        {"stage": "hot"},
        {"tag": "hot-lead"},
    )
    assert rule.cooldown_seconds == 3600 and rule.is_active

    client.post(f"/automations/rules/{rule.id}/toggle/")
    rule.refresh_from_db()
    assert not rule.is_active
    client.post(f"/automations/rules/{rule.id}/toggle/")
    rule.refresh_from_db()
    assert rule.is_active

    client.post(f"/automations/rules/{rule.id}/delete/")
    assert not AutomationRule.objects.filter(id=rule.id).exists()


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"trigger_config": '{"stage": "boiling"}'}, "trigger_config", "triggerConfig.stage"),
        ({"trigger_config": "{oops"}, "trigger_config", "Malformed JSON"),
        ({"action_config": "{}"}, "action_config", "actionConfig.tag"),
        ({"lead_conditions": '{"colour": "red"}'}, "lead_conditions", "Unknown condition"),
        ({"cooldown_seconds": "5"}, "cooldown_seconds", "greater than or equal to 60"),
        ({"action": "webhook", "action_config": '{"url": "ftp://x"}'}, "action_config", "http"),
    ],
)
def test_bad_rules_are_shown_per_field_and_not_saved(tenant, change, field, message):
    page = browser(tenant.owner).post("/automations/rules/", {**RULE, **change})
    assert page.status_code == 200
    errors = page.context["rule_form"].errors
    assert field in errors and message in " ".join(errors[field])
    assert f'data-error-for="{field}"' in page.content.decode()
    assert not AutomationRule.objects.exists()


def test_subscribe_shows_the_secret_once_then_test_and_delete(tenant):
    client = browser(tenant.owner)
    page = client.post("/automations/webhooks/", {"url": HOOK, "events": ["lead.updated", "automation.fired"]})
    subscription = WebhookSubscription.objects.get(project=tenant.project)
    assert subscription.events == ["automation.fired", "lead.updated"]
    assert "data-new-secret" in page.content.decode() and subscription.secret in page.content.decode()
    assert subscription.secret not in client.get("/automations/").content.decode()

    client.post(f"/automations/webhooks/{subscription.id}/test/")
    assert WebhookDelivery.objects.filter(subscription=subscription, event="ping").count() == 1

    client.post(f"/automations/webhooks/{subscription.id}/delete/")
    assert not WebhookSubscription.objects.exists()


@pytest.mark.parametrize(
    ("data", "field"),
    [({"url": "not a url", "events": ["lead.updated"]}, "url"), ({"url": HOOK}, "events"),
     ({"url": "ftp://example.com/x", "events": ["lead.updated"]}, "url")],
)  # fmt: skip
def test_bad_subscriptions_are_shown_per_field(tenant, data, field):
    page = browser(tenant.owner).post("/automations/webhooks/", data)
    assert page.status_code == 200 and field in page.context["subscribe_form"].errors
    assert not WebhookSubscription.objects.exists()


def test_replay_sends_the_failed_job_through_its_task(tenant):
    job = FailedJob.objects.create(project=tenant.project, kind="webhook.delivery", reference="r1",
                                   payload=REPLAY)  # fmt: skip
    with mock.patch("core.deadletter.app.send_task") as send_task:
        response = browser(tenant.owner).post(f"/automations/failed-jobs/{job.id}/replay/")
    assert response.status_code == 302
    send_task.assert_called_once_with("automations.webhook_replay_task", kwargs={"delivery_id": 0})
    job.refresh_from_db()
    assert job.replayed_at is not None


def test_another_projects_ids_are_404(tenant, other_tenant):
    rule = rule_for(other_tenant.project)
    hook = services.webhook_subscribe(project=other_tenant.project, url=HOOK, events=["lead.updated"])
    job = FailedJob.objects.create(project=other_tenant.project, kind="k", payload={"task": "x"})
    client = browser(tenant.owner)
    for url in (f"/automations/rules/{rule.id}/toggle/", f"/automations/rules/{rule.id}/delete/",
                f"/automations/webhooks/{hook.id}/test/", f"/automations/webhooks/{hook.id}/delete/",
                f"/automations/failed-jobs/{job.id}/replay/"):  # fmt: skip
        assert client.post(url).status_code == 404
    rule.refresh_from_db()
    assert rule.is_active and WebhookSubscription.objects.filter(id=hook.id).exists()
    job.refresh_from_db()
    assert job.replayed_at is None


def test_members_read_but_every_write_is_403(tenant):
    rule = rule_for(tenant.project)
    hook = services.webhook_subscribe(project=tenant.project, url=HOOK, events=["lead.updated"])
    job = FailedJob.objects.create(project=tenant.project, kind="k", payload={"task": "x"})
    client = browser(member_of(tenant.project))
    page = client.get("/automations/").content.decode()
    assert rule.name in page and "Create automation" not in page and ">Replay</button>" not in page
    for url, data in (("/automations/rules/", RULE), (f"/automations/rules/{rule.id}/toggle/", {}),
                      (f"/automations/rules/{rule.id}/delete/", {}),
                      ("/automations/webhooks/", {"url": HOOK, "events": ["lead.updated"]}),
                      (f"/automations/webhooks/{hook.id}/test/", {}), (f"/automations/webhooks/{hook.id}/delete/", {}),
                      (f"/automations/failed-jobs/{job.id}/replay/", {})):  # fmt: skip
        assert client.post(url, data).status_code == 403
    assert AutomationRule.objects.count() == 1 and WebhookSubscription.objects.count() == 1
    assert not WebhookDelivery.objects.exists()


def test_writes_are_post_only(tenant):
    rule = rule_for(tenant.project)
    assert browser(tenant.owner).get(f"/automations/rules/{rule.id}/delete/").status_code == 405
    assert AutomationRule.objects.filter(id=rule.id).exists()


def test_page_keeps_a_fixed_query_budget(tenant, django_assert_max_num_queries):
    activity(tenant.project, 2)
    client = browser(tenant.owner)
    client.get("/automations/")
    # 14: the rule form adds the scoring models and three suggestion reads (event names, events, leads)
    with django_assert_max_num_queries(14) as few:
        client.get("/automations/")
    activity(tenant.project, 6)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get("/automations/").status_code == 200
