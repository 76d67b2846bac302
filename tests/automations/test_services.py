"""Automation actions and webhook bookkeeping through the services, on PostgreSQL."""

from dataclasses import replace

import pytest
from django.core import mail

from automations import services
from automations.models import AutomationExecution, AutomationRule, WebhookDelivery
from core.contracts import LeadChange
from core.models import FailedJob
from tests.automations.factories import WebhookDeliveryFactory, WebhookSubscriptionFactory
from tests.handover import sent_to
from tests.ingest.factories import LeadFactory

pytestmark = pytest.mark.django_db


def lead_in(project, **fields):
    return LeadFactory(project=project, anonymous_id="a-1", current_score=40, lead_stage="hot", **fields)


def entered_hot(lead):
    return LeadChange.from_message({
        "kind": "scored", "projectId": lead.project_id, "leadId": lead.id, "oldScore": 20, "newScore": 40,
        "oldStage": "warm", "newStage": "hot", "velocity": 3, "eventIds": [], "path": [[20, "warm"], [40, "hot"]],
    })  # fmt: skip


def rule(project, action, config, **extra):
    return services.automation_create(project=project, data={
        "name": f"{action} rule", "trigger": "stage_entered", "trigger_config": {"stage": "hot"},
        "action": action, "action_config": config, **extra})  # fmt: skip


def fire(lead):
    fired = services.lead_change_handle(change=entered_hot(lead))
    for execution in AutomationExecution.objects.filter(status="pending"):
        services.automation_execute(execution_id=execution.id)
    return fired


def test_add_tag_and_set_owner_update_the_lead(tenant):
    lead = lead_in(tenant.project, traits={"tags": ["vip"]})
    rule(tenant.project, "add_tag", {"tag": "hot-lead"})
    rule(tenant.project, "set_owner", {"owner": "ana@acme.io"})

    assert fire(lead) == 2

    lead.refresh_from_db()
    assert lead.traits == {"tags": ["vip", "hot-lead"], "owner": "ana@acme.io"}
    assert set(AutomationExecution.objects.values_list("status", flat=True)) == {"succeeded"}


def test_email_action_sends_through_the_django_backend(tenant):
    lead = lead_in(tenant.project, email="buyer@corp.io", name="Bea Buyer")
    rule(tenant.project, "email", {"to": [tenant.owner.email]})

    fire(lead)

    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [tenant.owner.email] and "Bea Buyer" in mail.outbox[0].subject


def test_cooldown_and_lead_conditions(tenant):
    lead = lead_in(tenant.project)
    rule(tenant.project, "add_tag", {"tag": "once"})
    rule(tenant.project, "add_tag", {"tag": "grade-a-only"}, lead_conditions={"grades": ["A"]})

    assert fire(lead) == 1
    assert fire(lead) == 0  # same window: the unique constraint refuses a second execution
    assert AutomationExecution.objects.count() == 1


def test_slack_message_names_the_lead_its_score_stage_and_links_to_it(tenant, receiver):
    lead = lead_in(tenant.project, email="buyer@corp.io", name="Bea Buyer")
    rule(tenant.project, "slack", {"url": receiver.url})
    fire(lead)
    delivery = WebhookDelivery.objects.get()
    assert services.delivery_attempt(delivery_id=delivery.id).status == "succeeded"

    text = receiver.requests[0].body.decode()
    assert "Bea Buyer" in text and "buyer@corp.io" in text and "*hot*" in text and "*40*" in text
    assert f"/leads/{lead.id}/" in text
    assert "leadpulse-signature" not in receiver.requests[0].headers  # Slack needs no signature
    assert AutomationExecution.objects.get().status == "succeeded"


def test_a_subscription_is_disabled_after_a_long_run_of_failures(tenant, receiver, settings):
    settings.LEADPULSE_WEBHOOK_DISABLE_AFTER = 3
    settings.LEADPULSE_WEBHOOK_RETRY_DELAYS = [0, 0]
    receiver.script = [500]
    subscription = services.webhook_subscribe(project=tenant.project, url=receiver.url, events=["lead.updated"])
    lead = lead_in(tenant.project)
    services.lead_change_handle(change=replace(entered_hot(lead), event_ids=(1,)))
    delivery = WebhookDelivery.objects.get()

    outcomes = [services.delivery_attempt(delivery_id=delivery.id).status for _ in range(3)]

    assert outcomes == ["retry", "retry", "failed"]
    subscription.refresh_from_db()
    assert not subscription.is_active and subscription.consecutive_failures == 3
    assert "3 failed attempts" in subscription.disabled_reason
    assert FailedJob.objects.get().reference == str(delivery.delivery_id)
    # disabled subscriptions get no new deliveries
    services.lead_change_handle(change=replace(entered_hot(lead), event_ids=(2,)))
    assert WebhookDelivery.objects.count() == 1


def test_redirects_are_not_followed(tenant, receiver):
    receiver.script = [302]
    WebhookSubscriptionFactory(project=tenant.project, url=receiver.url, events=["lead.updated"])
    lead = lead_in(tenant.project)
    services.lead_change_handle(change=replace(entered_hot(lead), event_ids=(1,)))
    attempt = services.delivery_attempt(delivery_id=WebhookDelivery.objects.get().id)
    assert attempt.status == "retry" and WebhookDelivery.objects.get().response_code == 302
    assert len(receiver.requests) == 1


def test_a_url_that_turns_private_is_refused_at_delivery_time(tenant, receiver, settings):
    WebhookSubscriptionFactory(project=tenant.project, url=receiver.url, events=["lead.updated"])
    lead = lead_in(tenant.project)
    services.lead_change_handle(change=replace(entered_hot(lead), event_ids=(1,)))
    settings.LEADPULSE_WEBHOOK_ALLOW_PRIVATE = False  # e.g. DNS now answers 127.0.0.1

    attempt = services.delivery_attempt(delivery_id=WebhookDelivery.objects.get().id)

    assert attempt.status == "failed" and receiver.requests == []
    assert "private and loopback" in WebhookDelivery.objects.get().error
    assert AutomationRule.objects.count() == 0


def test_lead_changes_reach_automations_only_when_the_project_listens(
    tenant, django_capture_on_commit_callbacks, monkeypatch
):
    from core.contracts import LEAD_CHANGED_TASK
    from core.pipeline import lead_changed, project_listens

    sent: list[tuple[str, dict]] = []
    monkeypatch.setattr("core.pipeline.app.send_task", lambda name, kwargs=None, **_: sent.append((name, kwargs)))
    lead = lead_in(tenant.project)
    with django_capture_on_commit_callbacks(execute=True):
        lead_changed(change=entered_hot(lead))
    # no part for nobody: the one message carries companies' and predictions' (they take every project's changes)
    assert not project_listens(project_id=tenant.project.id) and len(sent) == 1
    assert sent_to(LEAD_CHANGED_TASK, sent) == []

    with django_capture_on_commit_callbacks(execute=True):
        created = rule(tenant.project, "add_tag", {"tag": "x"})
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        lead_changed(change=entered_hot(lead))
    assert project_listens(project_id=tenant.project.id) and len(sent) == 1  # still one message
    assert [part["change"]["leadId"] for part in sent_to(LEAD_CHANGED_TASK, sent)] == [lead.id]  # automations' part

    with django_capture_on_commit_callbacks(execute=True):
        services.automation_delete(rule=created)
    assert not project_listens(project_id=tenant.project.id)


def test_changing_a_webhook_automations_url_keeps_its_signing_secret(tenant):
    created = rule(tenant.project, "webhook", {"url": "http://127.0.0.1:9/a"})
    secret = created.action_config["secret"]
    updated = services.automation_update(rule=created, data={"action_config": {"url": "http://127.0.0.1:9/b"}})
    assert updated.action_config == {"url": "http://127.0.0.1:9/b", "secret": secret}


def test_a_redelivered_execution_task_acts_once(tenant, receiver):
    lead = lead_in(tenant.project)
    rule(tenant.project, "webhook", {"url": receiver.url})
    services.lead_change_handle(change=entered_hot(lead))
    execution = AutomationExecution.objects.get()
    services.automation_execute(execution_id=execution.id)
    services.automation_execute(execution_id=execution.id)  # at-least-once delivery ran it twice
    assert WebhookDelivery.objects.count() == 1


def test_slack_text_escapes_what_public_ingest_controls(tenant, receiver):
    lead = lead_in(tenant.project, name="<!channel> <https://evil.example|Reset>", email="x@y.io")
    rule(tenant.project, "slack", {"url": receiver.url})
    fire(lead)
    text = WebhookDelivery.objects.get().payload["text"]
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text and "evil.example|Reset>" not in text


def test_oversized_rule_caps_are_400(tenant):
    response = tenant.client.post("/api/rules", {"eventType": "x", "points": 1, "maxPerDay": 3_000_000_000},
                                  format="json")  # fmt: skip
    assert response.status_code == 400 and "maxPerDay" in response.json()["error"]["fields"]


def test_a_redelivered_change_sends_each_subscription_one_delivery(tenant):
    subscription = services.webhook_subscribe(
        project=tenant.project, url="http://127.0.0.1:9/h", events=["lead.updated", "lead.stage_changed"]
    )
    lead = lead_in(tenant.project)
    change = replace(entered_hot(lead), event_ids=(1,)).with_id("c1")  # the id lead_changed gives a change
    # when: the broker delivers the task twice (a worker died before acking), and another change follows
    services.lead_change_handle(change=change)
    services.lead_change_handle(change=change)
    services.lead_change_handle(change=change.with_id("c2"))
    # then: each event of each change reaches the subscriber once, and says which change it is
    deliveries = WebhookDelivery.objects.filter(subscription=subscription)
    assert sorted(deliveries.values_list("change_key", flat=True)) == [
        "c1:lead.stage_changed", "c1:lead.updated", "c2:lead.stage_changed", "c2:lead.updated"]  # fmt: skip
    assert {d.payload["data"]["change"]["changeId"] for d in deliveries} == {"c1", "c2"}


# --- What a failed delivery keeps: the status or a short reason of our own, never the receiver's body

LEAKY_BODY = (b"<html><script>alert(1)</script><pre>DATABASE_URL=postgres://admin:hunter2@db/prod\n"
              b"sk_live_51Hc0ntr0l\x00\x1b[31m\x07\r\n</pre>" + b"<p>stack trace</p>" * 5000 + b"</html>")  # fmt: skip


def failed_delivery(tenant, url):
    """A subscription's delivery to `url`, attempted once; the delivery as the API lists it."""
    subscription = WebhookSubscriptionFactory(project=tenant.project, url=url, events=["lead.updated"])
    services.lead_change_handle(change=replace(entered_hot(lead_in(tenant.project)), event_ids=(1,)))
    assert services.delivery_attempt(delivery_id=WebhookDelivery.objects.get().id).status == "retry"
    (listed,) = tenant.client.get(f"/api/webhooks/{subscription.id}/deliveries").json()["results"]
    return listed


def assert_short_and_printable(reason):
    assert len(reason) <= 200 and reason.isprintable(), reason


def test_a_failed_delivery_keeps_the_status_line_not_the_receivers_body(tenant, receiver):
    receiver.script = [500]
    receiver.body = LEAKY_BODY
    receiver.reason = "<b>sk_live_51Hc0ntr0l</b>"  # the receiver's own reason phrase is not trusted either

    listed = failed_delivery(tenant, receiver.url)

    assert listed["error"] == "HTTP 500 Internal Server Error" and listed["responseCode"] == 500
    assert WebhookDelivery.objects.get().error == "HTTP 500 Internal Server Error"
    assert len(receiver.requests) == 1


def test_a_delivery_that_times_out_says_so(tenant, receiver, settings):
    settings.LEADPULSE_WEBHOOK_TIMEOUT_SECONDS = 0.5
    receiver.delay = 1.5
    listed = failed_delivery(tenant, receiver.url)
    assert listed["error"] == "timeout after 0.5 s" and listed["responseCode"] is None


def test_a_refused_connection_says_so(tenant, refusing_port):
    listed = failed_delivery(tenant, f"http://127.0.0.1:{refusing_port}/hook")
    assert listed["error"] == "connection refused"


def test_a_dead_lettered_delivery_and_its_execution_keep_only_the_short_reason(tenant, receiver, settings):
    settings.LEADPULSE_WEBHOOK_RETRY_DELAYS = []
    receiver.script = [418]
    receiver.body = LEAKY_BODY
    rule(tenant.project, "webhook", {"url": receiver.url})
    fire(lead_in(tenant.project))

    assert services.delivery_attempt(delivery_id=WebhookDelivery.objects.get().id).status == "failed"

    execution = AutomationExecution.objects.get()
    assert (execution.status, execution.error) == ("failed", "HTTP 418 I'm a Teapot")
    assert FailedJob.objects.get().error == "HTTP 418 I'm a Teapot"
    (listed,) = tenant.client.get(f"/api/automations/{execution.rule_id}/executions").json()["results"]
    assert listed["error"] == "HTTP 418 I'm a Teapot"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("HTTP 500 Internal Server Error", "HTTP 500 Internal Server Error"),
        ("a\r\nb\x00c\x1b[31md\u2028e\u200bf", "a b c [31md e f"),
        ("x" * 500, "x" * 199 + "…"),
    ],
)
def test_reasons_are_one_short_printable_line(raw, clean):
    from automations.engine import one_line

    assert one_line(raw) == clean
    assert_short_and_printable(one_line(raw))


def test_the_migration_drops_receiver_bodies_stored_before(tenant):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("automations.migrations.0003_failure_reasons_short")
    body = LEAKY_BODY.decode().replace("\x00", "")[:500]
    delivery = WebhookDeliveryFactory(project=tenant.project, status="failed", response_code=500, error=body)
    timed_out = WebhookDeliveryFactory(project=tenant.project, error="ReadTimeout: timed\nout")
    job = FailedJob.objects.create(project=tenant.project, kind="webhook.delivery",
                                   reference=str(delivery.delivery_id), error=body)  # fmt: skip

    migration.forwards(apps, None)

    assert WebhookDelivery.objects.get(id=delivery.id).error == "HTTP 500 Internal Server Error"
    assert WebhookDelivery.objects.get(id=timed_out.id).error == "ReadTimeout: timed out"
    assert FailedJob.objects.get(id=job.id).error == "HTTP 500 Internal Server Error"
