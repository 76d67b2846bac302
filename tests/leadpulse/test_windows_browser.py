"""A window rule made on the rules page in a real browser, on the production topology (uvicorn on the test
PostgreSQL, Celery workers, Redis): "at least 3 times within 7 days" from the form, shown as "3 x in 7 days" in
the rules table; three pricing visits then score it once, as the lead's breakdown says.
Screenshots go to test-artifacts/pages/."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ingest.models import Lead
from scoring.models import LeadScore, RuleSetDraft, ScoringModel, ScoringRule
from scoring.services.models import scoring_model_create
from tests.accounts.factories import project_with_owner
from tests.leadpulse.test_dashboard_browser import SHOTS, ingest, settled, sign_in, signed_in
from tests.leadpulse.test_forms_browser import add_condition, chromium_page, rows_shown
from tests.leadpulse.test_models_browser import in_thread
from tests.live import wait_until

pytestmark = pytest.mark.live


@pytest.fixture
def web(live_pipeline, live_web):
    """`uvicorn leadpulse.asgi:application`, the Procfile's web process, on the test database (the session's)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    return live_web


def test_a_window_rule_made_on_the_rules_page_scores_the_third_visit_in_a_week(web):
    project, owner, key = project_with_owner(name="Windows Co")
    model = ScoringModel.objects.get(project=project, is_primary=True)
    # only the window rule scores pricing visits
    ScoringRule.objects.filter(model=model, event_type="pricing_page_visit").delete()

    with signed_in(web, owner.email) as (page, errors, console):
        # a bad window first: its error shows on its input, nothing is saved
        page.get_by_role("link", name="Rules").click()
        page.wait_for_url(f"{web}/rules/")
        form = page.locator("#rule-form")
        form.locator("input[name=name]").fill("Pricing, 3 times a week")
        form.locator("input[name=eventType]").fill("pricing_page_visit")
        form.locator("input[name=points]").fill("20")
        form.locator("input[name=windowCount]").fill("3")
        form.locator("input[name=windowDays]").fill("0")
        form.get_by_role("button", name="Save").click()
        page.wait_for_selector("#rule-form .errorlist")
        assert "Must be from 1 to 365." in form.inner_text()
        assert in_thread(lambda: ScoringRule.objects.filter(model=model, name__startswith="Pricing").count()) == 0

        # "at least 3 times within 7 days"
        form.locator("input[name=windowDays]").fill("7")
        form.get_by_role("button", name="Save").click()
        page.wait_for_url(f"{web}/rules/")
        rule = in_thread(lambda: ScoringRule.objects.get(model=model, name="Pricing, 3 times a week"))
        assert (rule.window_count, rule.window_days, rule.points) == (3, 7, 20)
        row = page.locator(f'#rules-engagement tr[data-rule-id="{rule.id}"]')
        assert row.locator("[data-window]").inner_text() == "3\u00d7 in 7 days"
        page.screenshot(path=str(SHOTS / "rules-window.png"), full_page=True)

        # four pricing visits in a week: the third scores 20, the fourth nothing
        start = timezone.now() - timedelta(days=3)
        visits = [{"eventType": "pricing_page_visit", "leadId": "looker", "eventId": f"p{i}",
                   "timestamp": (start + timedelta(hours=12 * i)).isoformat()} for i in range(4)]  # fmt: skip
        in_thread(lambda: ingest(key, visits))
        wait_until(lambda: in_thread(lambda: settled(project)), timeout=60, message="the visits to be scored")
        lead = in_thread(lambda: Lead.objects.get(project=project, anonymous_id="looker"))
        assert lead.current_score == 20

        page.goto(f"{web}/leads/{lead.id}/")
        breakdown = page.locator("#breakdown")
        assert "Pricing, 3 times a week" in breakdown.inner_text()
        assert breakdown.locator("[data-window]").inner_text() == "(window: 3\u00d7 in 7 days)"
        page.screenshot(path=str(SHOTS / "lead-window-breakdown.png"), full_page=True)

        assert errors == [] and console == []


def test_a_draft_window_rule_built_with_conditions_publishes_and_the_lead_page_adjusts_another_model(web):
    project, owner, key = project_with_owner(name="Windows Forms Co")
    model = ScoringModel.objects.get(project=project, is_primary=True)
    ScoringRule.objects.filter(model=model, event_type="pricing_page_visit").delete()
    sales = scoring_model_create(project=project, data={"key": "sales", "name": "Sales"}, copy_from=model)
    pricing = [{"path": "properties.url", "op": "contains", "value": "/pricing"}]

    with chromium_page() as page:
        sign_in(page, web, owner.email)
        # a draft rule from the form: a condition row from the builder and the window inputs, posted together
        page.goto(f"{web}/rules/")
        page.locator("#draft-start button").click()
        page.wait_for_url(f"{web}/rules/")
        form = page.locator("#rule-form")
        form.locator("input[name=name]").fill("Pricing, 3 times a week")
        form.locator("input[name=eventType]").fill("pricing_page_visit")
        form.locator("input[name=points]").fill("20")
        add_condition(form, "properties.url", "contains", "/pricing")
        form.locator("input[name=windowCount]").fill("3")
        form.locator("input[name=windowDays]").fill("5")
        form.get_by_role("button", name="Save in draft").click()
        page.wait_for_url(f"{web}/rules/")
        rules = in_thread(lambda: RuleSetDraft.objects.get(model=model).document["rules"])
        index, saved = next((i, r) for i, r in enumerate(rules) if r["name"] == "Pricing, 3 times a week")
        assert (saved["conditions"], saved["window_count"], saved["window_days"]) == (pricing, 3, 5)

        # edited again: the rows and the window come back, and a changed window keeps the conditions
        page.goto(f"{web}/rules/draft/rules/{index}/")
        form = page.locator("#rule-form")
        assert rows_shown(form) == [("properties.url", "contains", "/pricing", "text")]
        assert (form.locator("input[name=windowCount]").input_value(), form.locator("input[name=windowDays]")
                .input_value()) == ("3", "5")  # fmt: skip
        form.locator("input[name=windowDays]").fill("7")
        form.get_by_role("button", name="Save in draft").click()
        page.wait_for_url(f"{web}/rules/")
        page.locator("#draft-publish button").click()
        page.wait_for_url(f"{web}/rules/")
        rule = in_thread(lambda: ScoringRule.objects.get(model=model, name="Pricing, 3 times a week"))
        assert (rule.conditions, rule.window_count, rule.window_days) == (pricing, 3, 7)

        # three pricing visits in a week (and a blog one, which the condition leaves out): +20 once
        start = timezone.now() - timedelta(days=3)
        visits = [{"eventType": "pricing_page_visit", "leadId": "shopper", "eventId": f"v{i}",
                   "properties": {"url": url}, "timestamp": (start + timedelta(hours=6 * i)).isoformat()}
                  for i, url in enumerate(["/pricing", "/blog", "/pricing", "/pricing"])]  # fmt: skip
        in_thread(lambda: ingest(key, visits))
        wait_until(lambda: in_thread(lambda: settled(project)), timeout=60, message="the visits to be scored")
        lead = in_thread(lambda: Lead.objects.get(project=project, anonymous_id="shopper"))
        assert lead.current_score == 20

        # the lead page under model Sales: its adjustment form adjusts Sales, and the page stays on Sales
        before = in_thread(lambda: LeadScore.objects.get(lead_id=lead.id, model=sales).score)
        page.goto(f"{web}/leads/{lead.id}/")
        page.locator("#model-select").select_option("sales")
        page.wait_for_url(f"{web}/leads/{lead.id}/?model=sales")
        adjust = page.locator("#adjust-form")
        assert adjust.locator("select[name=model]").input_value() == "sales"
        adjust.locator("input[name=value]").fill("15")
        adjust.locator("input[name=reason]").fill("asked for a sales call")
        adjust.get_by_role("button", name="Adjust").click()
        page.wait_for_url(f"{web}/leads/{lead.id}/?model=sales")
        assert "Manual +15 by" in page.locator("#adjustments").inner_text()
        page.screenshot(path=str(SHOTS / "lead-adjust-other-model-window.png"), full_page=True)
        assert in_thread(lambda: LeadScore.objects.get(lead_id=lead.id, model=sales).score) == before + 15
        assert in_thread(lambda: Lead.objects.get(id=lead.id).current_score) == 20  # the primary as it was
