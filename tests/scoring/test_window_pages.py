"""Window rules on the rules page (live rules and drafts) and in the lead's breakdown, with Django's test client."""

import re

import pytest

from scoring.models import RuleSetDraft, ScoringRule
from scoring.services import rule_create
from tests.scoring.test_pages import browser, member_of, rule_post

pytestmark = pytest.mark.django_db


def row_of(html: str, attribute: str) -> str:
    return re.search(rf"<tr {attribute}[^>]*>(.*?)</tr>", html, re.S).group(1)


def test_a_window_rule_is_created_from_the_form_and_listed(tenant):
    client = browser(tenant.owner)
    form = client.get("/rules/").content.decode()
    assert 'name="windowCount"' in form and 'name="windowDays"' in form

    response = client.post("/rules/", rule_post(windowCount="3", windowDays="7", save="1"))

    assert response.status_code == 302
    rule = ScoringRule.objects.get(project=tenant.project, name="Pricing")
    assert (rule.window_count, rule.window_days) == (3, 7)
    row = row_of(client.get("/rules/").content.decode(), f'data-rule-id="{rule.id}"')
    assert "3\u00d7 in 7 days" in row
    # the edit form shows it, and emptying both inputs clears it
    edit = client.get(f"/rules/{rule.id}/").content.decode()
    assert re.search(r'name="windowCount" value="3"', edit) and re.search(r'name="windowDays" value="7"', edit)
    assert client.post(f"/rules/{rule.id}/", rule_post(windowCount="", windowDays="", save="1")).status_code == 302
    rule.refresh_from_db()
    assert (rule.window_count, rule.window_days) == (None, None)
    assert "\u00d7" not in row_of(client.get("/rules/").content.decode(), f'data-rule-id="{rule.id}"')


@pytest.mark.parametrize(
    ("inputs", "field", "message"),
    [
        ({"windowCount": "0", "windowDays": "7"}, "windowCount", "Must be from 1 to 100."),
        ({"windowCount": "3", "windowDays": "400"}, "windowDays", "Must be from 1 to 365."),
        ({"windowCount": "3", "windowDays": ""}, "windowDays", "This field is required."),
        ({"windowCount": "", "windowDays": "7"}, "windowCount", "This field is required."),
        ({"windowCount": "2", "windowDays": "7", "kind": "fit"}, "windowCount", "Only engagement rules take a window."),
    ],
)
def test_a_bad_window_shows_its_error_on_its_input_and_saves_nothing(tenant, inputs, field, message):
    client = browser(tenant.owner)
    before = ScoringRule.objects.filter(project=tenant.project).count()

    page = client.post("/rules/", rule_post(save="1", **inputs))

    assert page.status_code == 200
    assert page.context["rule_form"].errors[field] == [message]
    assert ScoringRule.objects.filter(project=tenant.project).count() == before


def test_a_draft_rule_takes_a_window_and_lists_it(tenant):
    client = member_of(tenant)
    assert client.post("/rules/draft/").status_code == 302

    response = client.post("/rules/draft/rules/", rule_post(windowCount="2", windowDays="1", save="1"))

    assert response.status_code == 302
    rules = RuleSetDraft.objects.get(model__project=tenant.project).document["rules"]
    assert (rules[-1]["window_count"], rules[-1]["window_days"]) == (2, 1)
    html = client.get("/rules/").content.decode()
    assert "2\u00d7 in 1 day" in row_of(html, f'data-draft-index="{len(rules) - 1}"')
    edit = client.get(f"/rules/draft/rules/{len(rules) - 1}/").content.decode()
    assert 'name="windowCount" value="2"' in edit
    bad = client.post(f"/rules/draft/rules/{len(rules) - 1}/", rule_post(windowCount="2", windowDays="0", save="1"))
    assert bad.status_code == 400 and bad.context["rule_form"].errors["windowDays"] == ["Must be from 1 to 365."]


def test_the_lead_breakdown_names_a_rules_window(tenant):
    from tests.scoring.test_rules_windows_api import visited, without_default_pricing

    without_default_pricing(tenant.project)
    rule_create(project=tenant.project, data={"name": "Pricing week", "event_type": "pricing_page_visit",
                                              "points": 20, "window_count": 3, "window_days": 7})  # fmt: skip
    lead = visited(tenant.project, "v", 3)
    assert lead.current_score == 20

    html = browser(tenant.owner).get(f"/leads/{lead.id}/").content.decode()

    breakdown = html.split('id="breakdown"')[1].split("</section>")[0]
    assert "Pricing week" in breakdown and "(window: 3\u00d7 in 7 days)" in breakdown
