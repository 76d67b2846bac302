"""Triggers and actions come from registries: one module adds one; API, forms, pages, OpenAPI and engine follow."""

import json

import jsonschema
import pytest
from django.test import Client

from automations import actions, engine, services, triggers
from automations.config_schema import Choice, Conditions, ConfigSchema, Emails, Integer, Text, Url
from automations.forms import AutomationRuleForm
from automations.models import AutomationExecution, AutomationRule
from automations.registry import Registry
from automations.serializers import AutomationRuleSerializer
from core.contracts import LeadChange
from ingest.models import Lead

pytestmark = pytest.mark.django_db


# --- What a new module would hold -------------------------------------------------------------------------------


class ScoreJumped(triggers.Trigger):
    """A trigger no built-in module has: the score rose by at least `points` in one change."""

    key = "score_jumped"
    label = "Score Jumped"
    config = ConfigSchema((Integer(name="points", label="Points", minimum=1, maximum=1000),))
    example = {"points": 25}

    def fires(self, config, change, events):
        jump = change.new_score - change.old_score
        return self.fired(jump=jump) if jump >= config["points"] else None


RECORDED: list[tuple[int, str]] = []


class Record(actions.Action):
    """An action no built-in module has: it records the lead and the configured colour; its URL is vetted by type."""

    key = "record"
    label = "Record"
    config = ConfigSchema(
        (
            Choice(name="colour", label="Colour", choices=("red", "blue")),
            Url(name="endpoint", label="Endpoint", required=False),
        )
    )
    example = {"colour": "red"}

    def execute(self, run):
        RECORDED.append((run.lead.id, run.config["colour"]))
        return actions.SUCCEEDED


@pytest.fixture
def score_jumped():
    with triggers.registry.registered(ScoreJumped) as trigger:
        yield trigger


@pytest.fixture
def record():
    RECORDED.clear()
    with actions.registry.registered(Record) as action:
        yield action


RULE = {"name": "Jumps", "trigger": "score_jumped", "triggerConfig": {"points": 25}, "action": "record",
        "actionConfig": {"colour": "blue"}}  # fmt: skip


def jumped(lead, old, new):
    return LeadChange.from_message({
        "kind": "scored", "projectId": lead.project_id, "leadId": lead.id, "oldScore": old, "newScore": new,
        "oldStage": "warm", "newStage": "hot", "velocity": 1, "eventIds": [], "path": [[old, "warm"], [new, "hot"]],
    })  # fmt: skip


def a_lead(project):
    return Lead.objects.create(project=project, anonymous_id="a-1", current_score=40, lead_stage="hot")


def document() -> dict:
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return json.loads(response.content)


def request_validator(doc: dict, component: str = "AutomationRuleRequest") -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator({"$ref": f"#/components/schemas/{component}", "components": doc["components"]})


# --- A new trigger and a new action, each one module -------------------------------------------------------------


def test_a_new_trigger_and_action_are_accepted_by_the_api_with_errors_naming_their_fields(tenant, score_jumped, record):
    created = tenant.client.post("/api/automations", RULE, format="json")
    assert created.status_code == 201, created.content
    assert (created.json()["trigger"], created.json()["actionConfig"]) == ("score_jumped", {"colour": "blue"})

    for patch, field, message in [
        ({"triggerConfig": {"points": 0}}, "triggerConfig.points", "Must be an integer from 1 to 1000."),
        ({"triggerConfig": {}}, "triggerConfig.points", "Must be an integer from 1 to 1000."),
        ({"triggerConfig": {"points": 5, "window": 7}}, "triggerConfig.window", "Unknown field."),
        ({"actionConfig": {"colour": "green"}}, "actionConfig.colour", "Must be one of red, blue."),
    ]:
        response = tenant.client.post("/api/automations", {**RULE, **patch}, format="json")
        assert response.status_code == 400, patch
        assert response.json()["error"]["fields"] == {field: [message]}
    assert AutomationRule.objects.count() == 1


def test_a_new_actions_url_is_vetted_for_its_type_without_code_of_its_own(tenant, score_jumped, record):
    body = {**RULE, "actionConfig": {"colour": "red", "endpoint": "http://169.254.169.254/latest"}}
    response = tenant.client.post("/api/automations", body, format="json")
    assert response.status_code == 400
    assert (
        response.json()["error"]["code"] == "unsafe_url"
        and "actionConfig.endpoint" in response.json()["error"]["fields"]
    )


def test_a_new_trigger_and_action_are_offered_by_the_form_and_the_page(tenant, score_jumped, record):
    form = AutomationRuleForm()
    assert ("score_jumped", "Score Jumped") in list(form.fields["trigger"].choices)
    assert ("record", "Record") in list(form.fields["action"].choices)

    client = Client()
    client.force_login(tenant.owner)
    html = client.get("/automations/").content.decode()
    assert (
        '<option value="score_jumped">Score Jumped</option>' in html
        and '<option value="record">Record</option>' in html
    )
    assert 'data-trigger="score_jumped"' in html and 'data-action="record"' in html  # the config reference

    form_data = {"name": "Jumps", "trigger": "score_jumped", "trigger_config": '{"points": 0}', "lead_conditions": "{}",
                 "action": "record", "action_config": '{"colour": "red"}', "cooldown_seconds": "3600"}  # fmt: skip
    page = client.post("/automations/rules/", form_data)
    errors = page.context["rule_form"].errors["trigger_config"]
    assert "triggerConfig.points: Must be an integer from 1 to 1000." in errors


def test_a_new_trigger_and_action_are_documented():
    document()  # a document built before they were registered leaves nothing stale behind
    with triggers.registry.registered(ScoreJumped), actions.registry.registered(Record):
        doc = document()
    rule = doc["components"]["schemas"]["AutomationRuleRequest"]
    assert "score_jumped" in doc["components"]["schemas"]["TriggerEnum"]["enum"]
    assert "record" in doc["components"]["schemas"]["ActionEnum"]["enum"]
    assert "`{points}` for score_jumped" in rule["properties"]["triggerConfig"]["description"]
    validator = request_validator(doc)
    assert validator.is_valid(RULE)
    assert not validator.is_valid({**RULE, "triggerConfig": {"points": 0}})
    assert not validator.is_valid({**RULE, "actionConfig": {"colour": "green"}})
    assert not validator.is_valid({**RULE, "triggerConfig": {"points": 5, "window": 7}})


def test_a_new_trigger_is_matched_by_the_engine_and_fires_its_action(tenant, score_jumped, record):
    lead = a_lead(tenant.project)
    assert engine.trigger_fires("score_jumped", {"points": 25}, jumped(lead, 10, 40), []) == {
        "trigger": "score_jumped",
        "jump": 30,
    }
    assert engine.trigger_fires("score_jumped", {"points": 25}, jumped(lead, 10, 20), []) is None

    rule = services.automation_create(project=tenant.project, data={
        "name": "Jumps", "trigger": "score_jumped", "trigger_config": {"points": 25}, "action": "record",
        "action_config": {"colour": "blue"}})  # fmt: skip
    assert services.lead_change_handle(change=jumped(lead, 10, 20)) == 0
    assert services.lead_change_handle(change=jumped(lead, 10, 40)) == 1
    execution = AutomationExecution.objects.get(rule=rule)
    assert execution.trigger == {"trigger": "score_jumped", "jump": 30}

    services.automation_execute(execution_id=execution.id)
    execution.refresh_from_db()
    assert execution.status == "succeeded" and [(lead.id, "blue")] == RECORDED


def test_a_rule_whose_trigger_and_action_are_no_longer_registered_is_inert_not_a_crash(tenant):
    lead = a_lead(tenant.project)
    with triggers.registry.registered(ScoreJumped), actions.registry.registered(Record):
        rule = tenant.client.post("/api/automations", RULE, format="json").json()
        services.lead_change_handle(change=jumped(lead, 10, 40))
    execution = AutomationExecution.objects.get(rule_id=rule["id"])

    assert tenant.client.get(f"/api/automations/{rule['id']}").json()["trigger"] == "score_jumped"
    response = tenant.client.patch(f"/api/automations/{rule['id']}", {"name": "Renamed"}, format="json")
    assert response.status_code == 400 and "trigger" in response.json()["error"]["fields"]
    assert services.lead_change_handle(change=jumped(lead, 0, 90).with_id("c2")) == 0
    services.automation_execute(execution_id=execution.id)
    execution.refresh_from_db()
    assert execution.status == "failed" and "unknown action 'record'" in execution.error


# --- The built-in triggers and actions ---------------------------------------------------------------------------

BUILT_IN_TRIGGERS = ["stage_entered", "score_crossed_up", "score_crossed_down", "velocity_at_least", "event_received",
                     "lead_merged", "lead_identified", "company.stage_entered", "company.score_crossed_up"]  # fmt: skip
BUILT_IN_ACTIONS = ["webhook", "slack", "email", "add_tag", "set_owner"]


def test_the_built_in_modules_are_registered_in_their_order():
    assert triggers.registry.keys() == BUILT_IN_TRIGGERS
    assert actions.registry.keys() == BUILT_IN_ACTIONS
    assert [key for key, _ in AutomationRule._meta.get_field("trigger").choices] == BUILT_IN_TRIGGERS
    assert [key for key, _ in AutomationRule._meta.get_field("action").choices] == BUILT_IN_ACTIONS


def test_every_built_in_example_is_valid_for_the_serializer_and_the_document():
    validator = request_validator(document())
    bodies = [
        *(({"trigger": trigger.key, "triggerConfig": trigger.example, "action": action.key,
            "actionConfig": action.example}, "triggerConfig") for trigger in triggers.registry
          for action in [next(a for a in actions.registry if trigger.subject in a.subjects)]),
        *(({"trigger": "lead_merged", "action": action.key, "actionConfig": action.example}, "actionConfig")
          for action in actions.registry),
    ]  # fmt: skip
    for body, config in bodies:
        body = {"name": "Example", **body}
        serializer = AutomationRuleSerializer(data=body)
        assert serializer.is_valid(), (body, serializer.errors)
        assert validator.is_valid(body), body
        unknown = {**body, config: {**body[config], "unknown": 1}}
        assert not AutomationRuleSerializer(data=unknown).is_valid() and not validator.is_valid(unknown), body


def test_a_config_secret_stays_hidden_after_the_action_that_set_it_changes(tenant):
    created = tenant.client.post("/api/automations", {"name": "Hook", "trigger": "lead_merged", "action": "webhook",
                                 "actionConfig": {"url": "http://127.0.0.1:9/hook"}}, format="json").json()  # fmt: skip
    secret = created["actionConfig"]["secret"]
    switched = {"action": "add_tag", "actionConfig": {"tag": "t"}}
    patched = tenant.client.patch(f"/api/automations/{created['id']}", switched, format="json")
    assert patched.status_code == 200 and patched.json()["actionConfig"] == {"tag": "t"}
    assert AutomationRule.objects.get(id=created["id"]).action_config["secret"] == secret  # kept for a switch back
    client = Client()
    client.force_login(tenant.owner)
    assert secret not in client.get("/automations/").content.decode()


# --- The registry and the config schema --------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["stage_entered", "Bad-Key", "", "x" * 33, "company.", "1st"])
def test_a_registry_refuses_a_taken_or_malformed_key(key):
    registry = Registry[triggers.Trigger]("trigger", key_max_length=32)
    registry.register(type("Taken", (ScoreJumped,), {"key": "stage_entered"}))
    with pytest.raises(ValueError, match=r"key|registered already"):
        registry.register(type("Other", (ScoreJumped,), {"key": key}))


def test_a_registry_takes_a_dotted_key_for_later_subjects():
    registry = Registry[triggers.Trigger]("trigger", key_max_length=32)
    registry.register(type("CompanyStage", (ScoreJumped,), {"key": "company.stage_entered", "position": 1}))
    registry.register(ScoreJumped)
    assert registry.keys() == ["company.stage_entered", "score_jumped"]  # by position, then key


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (Integer(name="n", label="N", minimum=1), None, "Must be an integer >= 1."),
        (Integer(name="n", label="N", minimum=1), True, "Must be an integer >= 1."),
        (Integer(name="n", label="N", minimum=1), "3", "Must be an integer >= 1."),
        (Integer(name="n", label="N", minimum=0, maximum=10), 11, "Must be an integer from 0 to 10."),
        (Integer(name="n", label="N", minimum=0, expected="a score"), -1, "Must be a score."),
        (Choice(name="n", label="N", choices=("a", "b")), "c", "Must be one of a, b."),
        (Choice(name="n", label="N", choices=("a", "b")), ["a"], "Must be one of a, b."),
        (Text(name="n", label="N", max_length=3), "abcd", "Must be a text of 1 to 3 characters."),
        (Text(name="n", label="N", max_length=3), "", "Must be a text of 1 to 3 characters."),
        (Text(name="n", label="N", min_length=0), 5, "Must be a string."),
        (Text(name="n", label="N", invalid="An event name, or *."), "", "An event name, or *."),
        (Url(name="n", label="N"), "", "Must be a URL."),
        (Emails(name="n", label="N", max_items=2), ["a@b.io"] * 3, "Must be a list of 1 to 2 email addresses."),
        (Emails(name="n", label="N", max_items=2), ["Ann <a@b.io>"], "Must be a list of 1 to 2 email addresses."),
        (Emails(name="n", label="N", max_items=2), "a@b.io", "Must be a list of 1 to 2 email addresses."),
        (Conditions(name="n", label="N"), "x", "Must be a list of at most 20 conditions."),
    ],
)
def test_each_field_type_names_what_it_expects(field, value, message):
    assert field.errors(value, "config.n") == {"config.n": [message]}


def test_a_schema_checks_fields_in_order_and_skips_optional_ones_left_out():
    schema = ConfigSchema((Text(name="first", label="First", required=False), Integer(name="second", label="Second"),
                           Conditions(name="conditions", label="Conditions")))  # fmt: skip
    assert schema.errors({}, prefix="c.") == {"c.second": ["Must be an integer."]}
    assert schema.errors({"first": 1, "second": "x"}, prefix="c.") == {"c.first": ["Must be a non-empty text."]}
    assert set(schema.errors({"second": 1, "conditions": [{"path": "a", "op": "??"}]}, prefix="c.")) == {
        "c.conditions[0].op"
    }
    assert schema.errors({"second": 1, "conditions": [{"path": "a", "op": "exists", "w": 1}]}, prefix="c.") == {
        "c.conditions[0].w": ["Unknown field."]
    }
    assert schema.unknown({"second": 1, "third": 3}, prefix="c.") == {"c.third": ["Unknown field."]}
    assert schema.json_schema()["required"] == ["second"] and schema.json_schema()["additionalProperties"] is False
    assert ConfigSchema().json_schema() == {"type": "object", "additionalProperties": False}
