"""Automations watch one scoring model: the one their trigger names, else the primary one."""

import base64
import json
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from automations import services
from automations.models import AutomationExecution
from core.contracts import LEAD_CHANGED_TASK, LEAD_CHANGES_TASK, LeadChange
from core.errors import ApplicationError
from ingest.models import Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from scoring.models import ScoringModel, ScoringRule
from scoring.services import lead_score
from tests.handover import sent_to

pytestmark = pytest.mark.django_db


def model_b(project) -> ScoringModel:
    model = ScoringModel.objects.create(project=project, key="b", name="B", warm_threshold=5, hot_threshold=8,
                                        qualified_threshold=12, max_score=40)  # fmt: skip
    ScoringRule.objects.create(project=project, model=model, name="views", event_type="page_view", points=3)
    return model


def watching(project, stage, **config):
    return services.automation_create(project=project, data={
        "name": f"{stage} {config}", "trigger": "stage_entered", "trigger_config": {"stage": stage, **config},
        "action": "add_tag", "action_config": {"tag": f"{stage}-{config.get('model', 'primary')}"}})  # fmt: skip


def sent_changes() -> list[LeadChange]:
    """The lead changes scoring handed to the broker (the real Redis queue), read back as the worker would."""
    broker, changes = redis.Redis.from_url(settings.REDIS_URL), []
    while raw := broker.rpop("celery"):
        message = json.loads(raw)
        _, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        for part in sent_to(LEAD_CHANGED_TASK, [(message["headers"]["task"], kwargs)]):
            changes.append(LeadChange.from_message(part["change"]))
        for part in sent_to(LEAD_CHANGES_TASK, [(message["headers"]["task"], kwargs)]):
            changes += [LeadChange.from_message(change) for change in part["changes"]]
    return changes


def test_a_rule_naming_a_model_fires_on_that_models_stage_and_the_others_on_the_primarys(
    tenant, django_capture_on_commit_callbacks
):
    model_b(tenant.project)
    with django_capture_on_commit_callbacks(execute=True):
        on_primary = watching(tenant.project, "warm")
        on_b = watching(tenant.project, "hot", model="b")
        watching(tenant.project, "hot")  # the primary never gets hot here
    redis.Redis.from_url(settings.REDIS_URL).delete("celery")
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        events_ingest(project_id=tenant.project.id, events=[
            CanonicalEvent(event_id=f"v{i}", name="page_view", anonymous_id="x",
                           timestamp=now - timedelta(minutes=5 - i))
            for i in range(3)
        ])  # fmt: skip
        lead = lead_score(lead_id=Lead.objects.get(anonymous_id="x", project=tenant.project).id)
    changes = sent_changes()
    assert {(c.model, c.primary, c.old_stage, c.new_stage) for c in changes} == {
        ("default", True, "cold", "warm"),  # 15 under the default rules
        ("b", False, "cold", "hot"),  # 9 under b's
    }
    # b's path 0 -> 3 -> 6 -> 9 is one run up: its ends carry it (every stage passed lies between them)
    assert next(c for c in changes if c.model == "b").path == ((0, "cold"), (9, "hot"))

    assert sum(services.lead_change_handle(change=change) for change in changes) == 2
    fired = set(AutomationExecution.objects.filter(lead=lead).values_list("rule_id", flat=True))
    assert fired == {on_primary.id, on_b.id}


def test_a_trigger_naming_another_projects_or_no_model_is_400(tenant, other_tenant):
    model_b(other_tenant.project)
    with pytest.raises(ApplicationError) as refused:
        watching(tenant.project, "hot", model="b")
    assert refused.value.field == "triggerConfig.model"
    response = tenant.client.post("/api/automations", {
        "name": "x", "trigger": "score_crossed_up", "triggerConfig": {"threshold": 10, "model": "nope"},
        "action": "add_tag", "actionConfig": {"tag": "t"}}, format="json")  # fmt: skip
    assert response.status_code == 400 and "triggerConfig.model" in response.json()["error"]["fields"]
