"""Automation rows stored directly. Create rules through `automations.services.automation_create` when the
test needs what it adds (a webhook action's signing secret, config validation)."""

import uuid

import factory

from automations.models import AutomationExecution, AutomationRule, WebhookDelivery, WebhookSubscription
from tests.accounts.factories import project_with_owner
from tests.ingest.factories import LeadFactory


class AutomationRuleFactory(factory.django.DjangoModelFactory):
    """When a lead enters hot, tag it."""

    class Meta:
        model = AutomationRule

    project = factory.LazyFunction(lambda: project_with_owner()[0])
    name = factory.Sequence(lambda n: f"Rule {n}")
    trigger = "stage_entered"
    trigger_config = factory.LazyFunction(lambda: {"stage": "hot"})
    action = "add_tag"
    action_config = factory.LazyFunction(lambda: {"tag": "hot-lead"})


class AutomationExecutionFactory(factory.django.DjangoModelFactory):
    """A pending firing of a rule (pass `rule=`) for a lead of the rule's project."""

    class Meta:
        model = AutomationExecution

    rule = factory.SubFactory(AutomationRuleFactory)
    project = factory.SelfAttribute("rule.project")
    lead = factory.SubFactory(LeadFactory, project=factory.SelfAttribute("..project"))
    window = 1


class WebhookSubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookSubscription

    project = factory.LazyFunction(lambda: project_with_owner()[0])
    url = factory.Sequence(lambda n: f"https://hooks.example.com/{n}")
    events = factory.LazyFunction(lambda: [WebhookSubscription.Event.LEAD_UPDATED.value])


def _delivery_project(delivery):
    owner = delivery.subscription or delivery.execution
    return owner.project if owner else project_with_owner()[0]


class WebhookDeliveryFactory(factory.django.DjangoModelFactory):
    """A pending delivery; of a `subscription=` or an `execution=` when given (project and URL follow)."""

    class Meta:
        model = WebhookDelivery

    subscription = None
    execution = None
    project = factory.LazyAttribute(_delivery_project)
    delivery_id = factory.LazyFunction(uuid.uuid4)
    url = factory.LazyAttribute(lambda d: d.subscription.url if d.subscription else "https://hooks.example.com/hook")
    event = WebhookSubscription.Event.LEAD_UPDATED.value
    payload = factory.LazyFunction(dict)
