"""The outbox sweep and the delivery claim: a firing or delivery committed but never sent (its process killed between
COMMIT and the after-commit sends) is sent by the sweep, and a second message for one acts once.

PostgreSQL and a real HTTP receiver; only the broker's `send_task` is captured (the messages then run through the
tasks registered under their names, as a worker would run them).
"""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from automations import services
from automations.models import AutomationExecution, WebhookDelivery
from core.contracts import DELIVER_TASK, EXECUTE_TASK
from leadpulse.celery import app as celery_app
from tests.accounts.factories import project_with_owner
from tests.automations.factories import WebhookDeliveryFactory, WebhookSubscriptionFactory
from tests.automations.test_services import entered_hot, lead_in, rule


@pytest.fixture
def swept(monkeypatch):
    """The messages the sweep sends, as (task name, kwargs)."""
    celery_app.loader.import_default_modules()
    sent: list[tuple[str, dict]] = []
    monkeypatch.setattr(
        "automations.services.outbox.app.send_task", lambda name, kwargs=None, **_: sent.append((name, kwargs))
    )
    return sent


def run(sent: list[tuple[str, dict]]) -> None:
    """Run the messages with the tasks registered under their names; the list empties."""
    while sent:
        name, kwargs = sent.pop(0)
        celery_app.tasks[name](**kwargs)


def test_a_firing_committed_but_never_sent_is_sent_by_the_sweep_once(tenant, receiver, swept):
    # given a change that fired a webhook rule and fed subscriptions, committed, its after-commit sends lost (the
    # test's transaction never commits, so its on-commit callbacks never run: a process killed right after COMMIT)
    WebhookSubscriptionFactory(project=tenant.project, url=f"{receiver.url}/sub",
                               events=["lead.stage_changed", "automation.fired"])  # fmt: skip
    lead = lead_in(tenant.project)
    rule(tenant.project, "webhook", {"url": f"{receiver.url}/rule"})
    change = entered_hot(lead).with_id("c1")
    assert services.lead_change_handle(change=change) == 1
    # and the redelivered change finds it all recorded, and sends nothing either
    assert services.lead_change_handle(change=change) == 0
    execution = AutomationExecution.objects.get()
    assert (execution.status, execution.attempts) == ("pending", 0)
    assert WebhookDelivery.objects.filter(status="pending", attempts=0).count() == 2
    assert receiver.requests == []

    # when the sweep runs: the execution's and each delivery's message again
    assert services.outbox_sweep() == 3
    assert sorted(name for name, _ in swept) == sorted([DELIVER_TASK, DELIVER_TASK, EXECUTE_TASK])
    assert all(kwargs["fresh"] for name, kwargs in swept if name == DELIVER_TASK)
    duplicates = list(swept)
    run(swept)
    # the action's own delivery, made by the execution, is swept in its turn (its send lost too)
    assert services.outbox_sweep() == 1
    run(swept)

    # then each POST happened once, and everything settled
    sent = sorted((r.path, r.headers["leadpulse-event"]) for r in receiver.requests)
    assert sent == [
        ("/hook/rule", "automation.fired"),
        ("/hook/sub", "automation.fired"),
        ("/hook/sub", "lead.stage_changed"),
    ]
    assert set(WebhookDelivery.objects.values_list("status", "attempts")) == {("succeeded", 1)}
    execution.refresh_from_db()
    assert (execution.status, execution.attempts) == ("succeeded", 1)
    # and neither the sweep nor the first messages, arriving late, act again
    assert services.outbox_sweep() == 0
    run(duplicates)
    assert len(receiver.requests) == 3


def test_the_sweep_leaves_what_was_attempted_claimed_or_is_within_its_grace(tenant, swept, settings):
    subscription = WebhookSubscriptionFactory(project=tenant.project)
    now = timezone.now()
    WebhookDeliveryFactory(subscription=subscription, attempts=1)  # waits for its retry's message
    WebhookDeliveryFactory(subscription=subscription, claimed_until=now + timedelta(minutes=5))  # being attempted
    lapsed = WebhookDeliveryFactory(subscription=subscription, claimed_until=now - timedelta(seconds=1))
    WebhookDeliveryFactory(subscription=subscription, status="succeeded")
    assert services.outbox_sweep() == 1
    assert swept == [(DELIVER_TASK, {"delivery_id": lapsed.id, "fresh": True})]
    # within the grace period nothing is swept
    settings.LEADPULSE_OUTBOX_GRACE_SECONDS = 60
    swept.clear()
    assert services.outbox_sweep() == 0 and swept == []


def test_a_sweeps_message_does_not_bring_a_retry_forward_and_retries_still_run(tenant, receiver):
    receiver.script = [500, 200]
    subscription = WebhookSubscriptionFactory(project=tenant.project, url=receiver.url)
    delivery = WebhookDeliveryFactory(subscription=subscription)
    assert services.delivery_attempt(delivery_id=delivery.id).status == "retry"
    # a sweep's message (fresh: never attempted only) for it, late, does nothing
    assert services.delivery_attempt(delivery_id=delivery.id, fresh=True).status == "done"
    assert len(receiver.requests) == 1
    # its retry's message attempts it again
    assert services.delivery_attempt(delivery_id=delivery.id).status == "succeeded"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.claimed_until) == ("succeeded", 2, None)
    assert len(receiver.requests) == 2


def test_two_messages_for_one_delivery_at_once_post_it_once(transactional_db, receiver):
    # given a delivery whose receiver takes a while to answer
    receiver.delay = 0.5
    project, _owner, _key = project_with_owner(name="Claim")
    delivery = WebhookDeliveryFactory(subscription=WebhookSubscriptionFactory(project=project, url=receiver.url))
    outcomes: list[str] = []

    def attempt() -> None:
        try:
            outcomes.append(services.delivery_attempt(delivery_id=delivery.id).status)
        finally:
            connection.close()

    # when two workers run a deliver message for it at the same time (a duplicate, or the sweep's and the first)
    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    # then one POSTs it and the other finds it claimed
    assert sorted(outcomes) == ["done", "succeeded"]
    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.claimed_until) == ("succeeded", 1, None)


def test_the_sweep_is_registered_with_celery_beat(db):
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="automations.outbox_sweep_task")
    assert task.enabled and task.interval.every == 30 and task.interval.period == "seconds"
    celery_app.loader.import_default_modules()
    assert task.task in celery_app.tasks


def test_a_deliver_message_redelivered_after_its_worker_died_mid_attempt_claims_its_delivery_again(tenant, receiver):
    # given a delivery its message's worker claimed, then died before settling it (the claim has not lapsed)
    subscription = WebhookSubscriptionFactory(project=tenant.project, url=receiver.url)
    claimed = {"claimed_until": timezone.now() + timedelta(minutes=5), "claimed_by": "task-1"}
    delivery = WebhookDeliveryFactory(subscription=subscription, **claimed)
    # when another message for it comes (a duplicate, the sweep's), it sends nothing
    assert services.delivery_attempt(delivery_id=delivery.id, claimant="task-2").status == "done"
    assert services.delivery_attempt(delivery_id=delivery.id).status == "done"
    assert receiver.requests == []
    # but the same message, redelivered by the broker, attempts it
    assert services.delivery_attempt(delivery_id=delivery.id, claimant="task-1").status == "succeeded"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.claimed_by) == ("succeeded", 1, "")
    assert len(receiver.requests) == 1
