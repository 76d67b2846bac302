"""A window rule made on the rules page in a real browser, on the production topology (uvicorn on the test
PostgreSQL, Celery workers, Redis): "at least 3 times within 7 days" from the form, shown as "3 x in 7 days" in
the rules table; three pricing visits then score it once, as the lead's breakdown says.
Screenshots go to test-artifacts/pages/."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ingest.models import Lead
from scoring.models import ScoringModel, ScoringRule
from tests.accounts.factories import project_with_owner
from tests.leadpulse.test_dashboard_browser import SHOTS, ingest, settled, signed_in
from tests.leadpulse.test_models_browser import in_thread
from tests.live import ROOT, wait_until, web_server

pytestmark = pytest.mark.live


@pytest.fixture
def web(live_pipeline):
    """`uvicorn leadpulse.asgi:application`, the Procfile's web process, on the test database."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    with web_server(ROOT / "test-artifacts" / "web-windows.log") as base:
        yield base


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
