"""Forms instead of JSON, in a real browser on the production topology (uvicorn on the test PostgreSQL, Celery
workers, Redis): the condition builder round-trips every operator of the engine (build, save, reload: the same
rows and the same stored JSON; the JSON toggle both ways), and the config form of every registered trigger and
action round-trips its config (a trigger or action registered later is covered as it is). Screenshots go to
test-artifacts/pages/."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from automations import actions, triggers
from automations.config_schema import Choice, Conditions, ConfigField, Emails, Integer, Text, Url
from automations.models import AutomationRule
from scoring import engine
from scoring.models import ScoringModel, ScoringRule
from tests.accounts.factories import project_with_owner
from tests.browser.support import launch_chromium
from tests.leadpulse.test_csp_browser import console_note
from tests.leadpulse.test_dashboard_browser import SHOTS, ingest, sign_in
from tests.leadpulse.test_models_browser import in_thread

pytestmark = pytest.mark.live

# (path, operator, what is typed in the value input(s), its type select, the value stored): one per operator
ROWS = [
    ("properties.plan", "eq", "pro", "text", "pro"),
    ("properties.seats", "neq", "5", "number", 5),
    ("properties.url", "contains", "/pricing", None, "/pricing"),
    ("properties.url", "not_contains", "blog", None, "blog"),
    ("context.page.path", "starts_with", "/p", None, "/p"),
    ("properties.url", "ends_with", ".html", None, ".html"),
    ("properties.plan", "in", "pro\nteam", None, ["pro", "team"]),
    ("properties.seats", "gt", "1", None, 1),
    ("properties.seats", "gte", "2.5", None, 2.5),
    ("properties.seats", "lt", "10", None, 10),
    ("properties.seats", "lte", "100", None, 100),
    ("properties.coupon", "exists", None, None, None),
    ("properties.trial", "not_exists", None, None, None),
    ("properties.url", "regex", "^/p(ricing)?$", None, "^/p(ricing)?$"),
]
STORED = [{"path": path, "op": op, "value": value} for path, op, _, _, value in ROWS]


@pytest.fixture
def web(live_pipeline, live_web):
    """`uvicorn leadpulse.asgi:application`, the Procfile's web process, on the test database (the session's)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    return live_web


@contextmanager
def chromium_page() -> Iterator[Any]:
    """A page of a fresh Chromium; no page error or console error or warning by the end. Opened after the
    test's data is written: Django refuses database queries inside Playwright's event loop."""
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        errors: list[str] = []
        console: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: console_note(console, page, message))
        yield page
        browser.close()
    assert errors == [] and console == []


def add_condition(scope, path: str, op: str, typed: str | None, value_type: str | None = None) -> None:
    scope.locator("[data-add-condition]").click()
    row = scope.locator("[data-condition-row]").last
    row.locator("[data-part=path]").fill(path)
    row.locator("[data-part=op]").select_option(op)
    if typed is not None:
        row.locator("[data-part=value]").fill(typed)
    if value_type is not None:
        row.locator("[data-part=type]").select_option(value_type)


def rows_shown(scope) -> list[tuple[str, str, str | None, str | None]]:
    """Each row's path, operator, value input and type select, as the page shows them."""
    shown = []
    for row in scope.locator("[data-condition-row]").all():
        value = row.locator("[data-part=value]")
        kind = row.locator("[data-part=type]")
        shown.append(
            (
                row.locator("[data-part=path]").input_value(),
                row.locator("[data-part=op]").input_value(),
                value.input_value() if value.count() else None,
                kind.input_value() if kind.count() else None,
            )
        )
    return shown


def expected_rows() -> list[tuple[str, str, str | None, str | None]]:
    defaults = {"eq": "text", "neq": "text", "contains": "text", "not_contains": "text", "starts_with": "text",
                "ends_with": "text", "in": "text"}  # fmt: skip
    return [(path, op, typed, value_type or defaults.get(op)) for path, op, typed, value_type, _ in ROWS]


def test_the_condition_builder_round_trips_every_operator(web):
    assert {op for _, op, _, _, _ in ROWS} == set(engine.OPERATORS)  # a new operator needs a row here
    project, owner, key = project_with_owner(name="Builder Co")
    _, _, other_key = project_with_owner(name="Secret Other Co")
    ingest(key, [{"eventType": "page_view", "leadId": "pat", "eventId": "p1", "properties": {"url": "/pricing"}}])
    ingest(other_key, [{"eventType": "secret_event", "leadId": "x", "eventId": "s1", "properties": {"secretPath": 1}}])
    with chromium_page() as page:
        sign_in(page, web, owner.email)

        # the rules page: the conditions are rows, the JSON is hidden; suggestions are the project's own
        page.goto(f"{web}/rules/")
        form = page.locator("#rule-form")
        assert form.locator("textarea[name=conditions]").is_hidden()
        assert form.locator("[data-condition-row]").count() == 0
        paths = page.locator("#suggest-event-paths option").evaluate_all("options => options.map(o => o.value)")
        assert "properties.url" in paths and "properties.secretPath" not in paths
        names = page.locator("#suggest-event-names option").evaluate_all("options => options.map(o => o.value)")
        assert "page_view" in names and "secret_event" not in names
        assert form.locator("input[name=eventType]").get_attribute("list") == "suggest-event-names"

        # build one row per operator; each operator gets its own value input
        form.locator("input[name=name]").fill("Every operator")
        form.locator("input[name=eventType]").fill("page_view")
        form.locator("input[name=points]").fill("7")
        for path, op, typed, value_type, _ in ROWS:
            add_condition(form, path, op, typed, value_type)
        rows = form.locator("[data-condition-row]")
        assert rows.nth(ROWS.index(next(r for r in ROWS if r[1] == "exists"))).locator("[data-part=value]").count() == 0
        assert rows.nth(7).locator("input[data-part=value]").get_attribute("type") == "number"  # gt
        assert rows.nth(6).locator("textarea[data-part=value]").count() == 1  # in: one value per line
        # a row added then removed leaves nothing behind
        add_condition(form, "properties.gone", "eq", "x")
        rows.last.locator("[data-part=remove]").click()
        assert rows.count() == len(ROWS)
        assert json.loads(form.locator("textarea[name=conditions]").input_value()) == STORED
        page.screenshot(path=str(SHOTS / "rules-condition-builder.png"), full_page=True)
        form.get_by_role("button", name="Save", exact=True).click()
        page.wait_for_url(f"{web}/rules/")

        # stored as the JSON document the API takes; the rules table shows JSON values, not Python reprs
        rule = in_thread(lambda: ScoringRule.objects.get(project=project, name="Every operator"))
        assert rule.conditions == STORED
        table = page.locator(f'#rules-engagement tr[data-rule-id="{rule.id}"]').inner_text()
        assert 'properties.plan in ["pro", "team"]' in table and "['pro'" not in table

        # reload it in the edit form: the same rows
        page.goto(f"{web}/rules/{rule.id}/")
        form = page.locator("#rule-form")
        assert rows_shown(form) == expected_rows()
        assert json.loads(form.locator("textarea[name=conditions]").input_value()) == STORED

        # the JSON toggle: the document the rows make; edited there, the rows follow
        form.locator("[data-json-toggle]").click()
        textarea = form.locator("textarea[name=conditions]")
        assert textarea.is_visible() and form.locator("[data-condition-rows]").is_hidden()
        assert json.loads(textarea.input_value()) == STORED
        edited = [*STORED[1:], {"path": "traits.size", "op": "gte", "value": 50}]
        textarea.fill(json.dumps(edited))
        form.locator("[data-json-toggle]").click()
        assert textarea.is_hidden()
        assert rows_shown(form) == [*expected_rows()[1:], ("traits.size", "gte", "50", None)]
        # JSON that rows cannot show unchanged (or no JSON at all) stays JSON, with a note
        form.locator("[data-json-toggle]").click()
        textarea.fill('[{"path": "properties.x", "op": "in", "value": ["a", 1]}]')
        form.locator("[data-json-toggle]").click()
        assert textarea.is_visible() and "cannot be shown as a form" in form.locator("[data-builder-note]").inner_text()
        textarea.fill("[{not json")
        form.locator("[data-json-toggle]").click()
        assert textarea.is_visible() and "Not valid JSON" in form.locator("[data-builder-note]").inner_text()
        textarea.fill(json.dumps(edited))
        form.locator("[data-json-toggle]").click()
        assert textarea.is_hidden()
        form.get_by_role("button", name="Save", exact=True).click()
        page.wait_for_url(f"{web}/rules/")
        assert in_thread(lambda: ScoringRule.objects.get(id=rule.id).conditions) == edited

        # a fit rule suggests profile paths; the draft's rule form is a builder too
        page.locator("#draft-start button").click()
        page.wait_for_url(f"{web}/rules/")
        form = page.locator("#rule-form")
        form.locator("select[name=kind]").select_option("fit")
        add_condition(form, "traits.plan", "eq", "pro")
        assert form.locator("[data-part=path]").last.get_attribute("list") == "suggest-profile-paths"
        form.locator("input[name=name]").fill("Pro plan")
        form.locator("input[name=points]").fill("12")
        form.get_by_role("button", name="Save in draft").click()
        page.wait_for_url(f"{web}/rules/")
        assert "Pro plan" in page.locator("#rules-fit").inner_text()


# --- automation forms from the registry -----------------------------------------------------------------------


def config_value(field: ConfigField, *, owner_email: str, model_key: str) -> Any:
    """A valid value for a declared field (not its default), as a person would pick it."""
    if field is triggers.MODEL:
        return model_key
    if isinstance(field, Choice):
        return field.choices[-1]
    if isinstance(field, Integer):
        value = (field.minimum or 0) + 3
        return value if field.maximum is None else min(value, field.maximum)
    if isinstance(field, Url):
        return f"http://127.0.0.1:9/{field.name}-hook"
    if isinstance(field, Emails):
        return [owner_email]
    if isinstance(field, Conditions):
        return [{"path": "properties.plan", "op": "eq", "value": "pro"}]
    if isinstance(field, Text):
        return f"{field.name}-one"[: field.max_length or 64]
    raise AssertionError(f"{type(field).__name__}: teach the page's generated form (and this test) this kind")


def config_for(entry: triggers.Trigger | actions.Action, **values: str) -> dict[str, Any]:
    return {field.name: config_value(field, **values) for field in entry.config}


def fill_config(page, of: str, entry: triggers.Trigger | actions.Action, config: dict[str, Any]) -> None:
    form = page.locator(f'[data-config-form="{of}"]')
    for field in entry.config:
        box = form.locator(f'[data-config-field="{field.name}"]')
        value = config[field.name]
        if isinstance(field, Conditions):
            for condition in value:
                add_condition(box, condition["path"], condition["op"], str(condition["value"]))
        elif box.locator("select").count():
            box.locator("select").select_option(value)
        elif isinstance(field, Emails):
            box.locator("textarea").fill("\n".join(value))
        else:
            box.locator("input").fill(str(value))


def shown_config(page, of: str, entry: triggers.Trigger | actions.Action) -> dict[str, Any]:
    """What the generated form shows, read back per field."""
    form = page.locator(f'[data-config-form="{of}"]')
    shown: dict[str, Any] = {}
    for field in entry.config:
        box = form.locator(f'[data-config-field="{field.name}"]')
        if isinstance(field, Conditions):
            shown[field.name] = [{"path": p, "op": o, "value": v} for p, o, v, _ in rows_shown(box)]
        elif box.locator("select").count():
            shown[field.name] = box.locator("select").input_value()
        elif isinstance(field, Emails):
            shown[field.name] = box.locator("textarea").input_value().split("\n")
        else:
            raw = box.locator("input").input_value()
            shown[field.name] = int(raw) if isinstance(field, Integer) else raw
    return shown


LEAD_CONDITIONS = {"stages": ["hot", "qualified"], "minScore": 10,
                   "traits": [{"path": "traits.plan", "op": "in", "value": ["pro", "team"]}]}  # fmt: skip
CASES = [("trigger", t.key) for t in triggers.registry] + [("action", a.key) for a in actions.registry]


@pytest.mark.parametrize(("of", "key"), CASES, ids=[f"{of}-{key}" for of, key in CASES])
def test_each_trigger_and_action_form_round_trips_its_config(web, of, key):
    project, owner, _ = project_with_owner(name="Automations Co")
    other, _, _ = project_with_owner(name="Secret Other Co")
    ScoringModel.objects.create(project=project, key="second", name="Second model")
    ScoringModel.objects.create(project=other, key="their-model", name="Their model")
    # the entry under test, with a fixed partner on the other side
    trigger = triggers.registry.get(key if of == "trigger" else "stage_entered")
    assert trigger is not None
    # a company's trigger acts through a message (webhook, Slack, email), never on a lead: no lead conditions
    company = trigger.subject == "company"
    action = actions.registry.get(key if of == "action" else "webhook" if company else "add_tag")
    assert trigger is not None and action is not None
    values = {"owner_email": owner.email, "model_key": "second"}
    trigger_config, action_config = config_for(trigger, **values), config_for(action, **values)
    with chromium_page() as page:
        sign_in(page, web, owner.email)

        page.goto(f"{web}/automations/")
        form = page.locator("form[data-rule-form]")
        for name in ("trigger_config", "action_config", "lead_conditions"):
            assert form.locator(f"textarea[name={name}]").is_hidden()
        form.locator("select[name=trigger]").select_option(trigger.key)
        form.locator("select[name=action]").select_option(action.key)
        # one input per declared field, and nothing else
        for side, entry in (("trigger", trigger), ("action", action)):
            fields = page.locator(f'[data-config-form="{side}"] [data-config-field]')
            assert fields.evaluate_all("boxes => boxes.map(b => b.dataset.configField)") == list(entry.config.names())
        if triggers.MODEL in trigger.config.fields:
            options = page.locator('[data-config-field="model"] option').evaluate_all("os => os.map(o => o.value)")
            assert options == ["", "default", "second"]  # the project's models, never another project's
        fill_config(page, "trigger", trigger, trigger_config)
        fill_config(page, "action", action, action_config)
        if not company:
            lead = page.locator('[data-config-form="lead_conditions"]')
            lead.locator('[data-config-field="stages"] input[value=hot]').check()
            lead.locator('[data-config-field="stages"] input[value=qualified]').check()
            lead.locator('[data-config-field="minScore"] input').fill("10")
            add_condition(lead.locator('[data-config-field="traits"]'), "traits.plan", "in", "pro\nteam")

        # left without a name, the page comes back with the form rebuilt from the posted JSON
        form.get_by_role("button", name="Create automation").click()
        page.wait_for_load_state()
        assert page.locator('[data-error-for="name"]').count() == 1
        assert shown_config(page, "trigger", trigger) == trigger_config
        assert shown_config(page, "action", action) == action_config
        assert page.locator("textarea[name=trigger_config]").is_hidden()
        page.screenshot(path=str(SHOTS / f"automation-form-{of}-{key}.png"), full_page=True)

        # the JSON toggle shows the very document; back to the form, unchanged
        form = page.locator("form[data-rule-form]")
        toggle = page.locator('[data-config-form="trigger"] ~ .builder-tools [data-json-toggle]')
        toggle.click()
        assert json.loads(form.locator("textarea[name=trigger_config]").input_value()) == trigger_config
        toggle.click()
        assert shown_config(page, "trigger", trigger) == trigger_config

        form.locator("input[name=name]").fill(f"Round trip {key}")
        form.get_by_role("button", name="Create automation").click()
        page.wait_for_url(f"{web}/automations/")
        rule = in_thread(lambda: AutomationRule.objects.get(project=project))
        assert (rule.trigger, rule.action) == (trigger.key, action.key)
        assert rule.trigger_config == trigger_config
        assert rule.lead_conditions == ({} if company else LEAD_CONDITIONS)
        # what `prepare` adds (a new signing secret when none is given) aside, the action's config as posted
        assert {k: v for k, v in rule.action_config.items() if k in action_config} == action_config
