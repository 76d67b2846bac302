import pytest

from accounts.models import Membership
from automations.models import AutomationRule, WebhookSubscription
from tests.accounts.factories import UserFactory
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

HOT = {"name": "Hot", "trigger": "stage_entered", "triggerConfig": {"stage": "hot"}, "action": "webhook",
       "actionConfig": {"url": "http://127.0.0.1:9/hook"}}  # fmt: skip


def test_crud_and_the_secret_is_shown_once(tenant):
    created = tenant.client.post("/api/automations", HOT, format="json")
    assert created.status_code == 201
    rule_id = created.json()["id"]
    assert created.json()["actionConfig"]["secret"].startswith("whsec_")
    assert tenant.client.get("/api/automations").json()["results"][0]["id"] == rule_id
    patched = tenant.client.patch(f"/api/automations/{rule_id}", {"cooldownSeconds": 3600}, format="json")
    assert patched.status_code == 200 and patched.json()["cooldownSeconds"] == 3600
    assert "secret" not in patched.json()["actionConfig"]
    assert AutomationRule.objects.get(pk=rule_id).action_config["secret"] == created.json()["actionConfig"]["secret"]
    assert tenant.client.get(f"/api/automations/{rule_id}/executions").json()["count"] == 0
    assert tenant.client.delete(f"/api/automations/{rule_id}").status_code == 204


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"trigger": "nope"}, "trigger"),
        ({"triggerConfig": {"stage": "boiling"}}, "triggerConfig.stage"),
        ({"trigger": "score_crossed_up", "triggerConfig": {}}, "triggerConfig.threshold"),
        (
            {
                "trigger": "event_received",
                "triggerConfig": {"eventType": "x", "conditions": [{"path": "a", "op": "??"}]},
            },
            "triggerConfig.conditions[0].op",
        ),
        ({"action": "email", "actionConfig": {"to": "not-a-list"}}, "actionConfig.to"),
        ({"actionConfig": {"url": "ftp://example.com/x"}}, "actionConfig.url"),
        ({"actionConfig": {"url": "http://169.254.169.254/latest"}}, "actionConfig.url"),
        ({"leadConditions": {"stages": ["boiling"]}}, "leadConditions.stages"),
        ({"leadConditions": {"colour": "red"}}, "leadConditions.colour"),
        ({"cooldownSeconds": 5}, "cooldownSeconds"),
    ],
)
def test_bad_automations_are_400_naming_the_field(tenant, patch, field):
    response = tenant.client.post("/api/automations", {**HOT, **patch}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert not AutomationRule.objects.exists()


def test_private_addresses_are_refused_when_not_allowed(tenant, settings):
    settings.LEADPULSE_WEBHOOK_ALLOW_PRIVATE = False
    for url in ("http://127.0.0.1:9/hook", "http://10.0.0.5/hook", "http://[::1]/hook"):
        response = tenant.client.post("/api/webhooks/subscribe", {"url": url, "events": ["lead.updated"]},
                                      format="json")  # fmt: skip
        assert response.status_code == 400 and response.json()["error"]["code"] == "unsafe_url", url
        assert tenant.client.post("/api/automations", {**HOT, "actionConfig": {"url": url}},
                                  format="json").status_code == 400  # fmt: skip
    assert not WebhookSubscription.objects.exists()


def test_subscribe_list_delete(tenant):
    created = tenant.client.post("/api/webhooks/subscribe", {"url": "http://127.0.0.1:9/h",
                                 "events": ["lead.updated", "automation.fired"]}, format="json")  # fmt: skip
    assert created.status_code == 201 and created.json()["secret"].startswith("whsec_")
    listed = tenant.client.get("/api/webhooks").json()["results"]
    assert [s["id"] for s in listed] == [created.json()["id"]] and "secret" not in listed[0]
    bad = tenant.client.post("/api/webhooks/subscribe", {"url": "http://127.0.0.1:9/h", "events": ["lead.eaten"]},
                             format="json")  # fmt: skip
    assert bad.status_code == 400 and "events" in bad.json()["error"]["fields"]
    assert tenant.client.delete(f"/api/webhooks/{created.json()['id']}").status_code == 204
    assert not WebhookSubscription.objects.exists()


def test_another_projects_automations_and_webhooks_are_invisible(tenant, other_tenant):
    rule = tenant.client.post("/api/automations", HOT, format="json").json()
    hook = tenant.client.post("/api/webhooks/subscribe", {"url": "http://127.0.0.1:9/h", "events": ["lead.updated"]},
                              format="json").json()  # fmt: skip
    other = other_tenant.client
    assert other.get("/api/automations").json()["results"] == []
    assert other.get("/api/webhooks").json()["results"] == []
    for method, path in [
        ("get", f"/api/automations/{rule['id']}"),
        ("patch", f"/api/automations/{rule['id']}"),
        ("delete", f"/api/automations/{rule['id']}"),
        ("get", f"/api/automations/{rule['id']}/executions"),
        ("delete", f"/api/webhooks/{hook['id']}"),
        ("post", f"/api/webhooks/{hook['id']}/test"),
        ("get", f"/api/webhooks/{hook['id']}/deliveries"),
    ]:
        assert getattr(other, method)(path, {}, format="json").status_code == 404, (method, path)
    assert AutomationRule.objects.filter(pk=rule["id"]).exists()
    assert WebhookSubscription.objects.filter(pk=hook["id"]).exists()
    assert other.get("/api/failed-jobs").json()["count"] == 0


def test_members_read_but_cannot_change_automations(tenant):
    member = UserFactory()
    Membership.objects.create(user=member, project=tenant.project, role="member")
    client = client_for(member)
    assert client.get("/api/automations").status_code == 200
    assert client.post("/api/automations", HOT, format="json").status_code == 403
    assert client.post("/api/webhooks/subscribe", {"url": "http://127.0.0.1:9/h", "events": ["lead.updated"]},
                       format="json").status_code == 403  # fmt: skip


def test_unauthenticated_calls_are_401(api_client):
    for path in ("/api/automations", "/api/webhooks", "/api/failed-jobs"):
        assert api_client.get(path).status_code == 401


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"leadConditions": {"stages": 5}}, "leadConditions.stages"),
        ({"leadConditions": {"grades": [{"A": 1}]}}, "leadConditions.grades"),
        ({"leadConditions": {"stages": "hot"}}, "leadConditions.stages"),
        ({"triggerConfig": {"stage": "hot", "note": "a\x00b"}}, "triggerConfig"),
        ({"actionConfig": {"url": "http://127.0.0.1:9/hook", "secret": 5}}, "actionConfig.secret"),
        ({"name": 0}, "name"),
        ({"isActive": 0}, "isActive"),
        ({"cooldownSeconds": "3600"}, "cooldownSeconds"),
    ],
)
def test_malformed_rules_are_400_not_500(tenant, patch, field):
    # regression: these crashed (set() of a number, NUL in jsonb) or were silently coerced
    response = tenant.client.post("/api/automations", {**HOT, **patch}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert not AutomationRule.objects.exists()


def test_a_rule_may_set_its_own_signing_secret(tenant):
    created = tenant.client.post(
        "/api/automations", {**HOT, "actionConfig": {"url": "http://127.0.0.1:9/hook", "secret": "whsec_mine"}},
        format="json",
    )  # fmt: skip
    assert created.status_code == 201 and created.json()["actionConfig"]["secret"] == "whsec_mine"
