"""Manual adjustments in a real browser, on the production topology (uvicorn on the test PostgreSQL, Celery
workers, Redis): a member subtracts points from a lead on its page, sees the adjustment in the list, the
timeline and the breakdown, gets a refusal for zero points, then resets the engagement score.
Screenshots go to test-artifacts/pages/."""

import pytest

from accounts.models import Membership
from ingest.models import Event, Lead
from tests.accounts.factories import UserFactory, project_with_owner
from tests.leadpulse.test_dashboard_browser import SHOTS, ingest, settled, signed_in
from tests.leadpulse.test_models_browser import in_thread
from tests.live import wait_until

pytestmark = pytest.mark.live


@pytest.fixture
def web(live_pipeline, live_web):
    """`uvicorn leadpulse.asgi:application`, the Procfile's web process, on the test database (the session's)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    return live_web


def test_a_member_adjusts_a_lead_on_its_page_then_resets_it(web):
    project, _owner, key = project_with_owner(name="Adjust Co")
    member = UserFactory(email="ana@adjust.example")
    Membership.objects.create(user=member, project=project, role=Membership.Role.MEMBER)
    ingest(key, [{"eventType": "signup", "leadId": "student", "eventId": "s1"},
                 {"eventType": "demo_request", "leadId": "student", "eventId": "d1"}])  # fmt: skip
    wait_until(lambda: settled(project), timeout=60, message="scoring")
    lead = Lead.objects.get(project=project, anonymous_id="student")
    assert lead.current_score == 80
    label = "Manual \u221220 by ana@adjust.example: disqualified, student"

    with signed_in(web, member.email) as (page, errors, console):
        page.goto(f"{web}/leads/{lead.id}/")
        assert page.locator('[data-field="currentScore"]').inner_text() == "80"

        # subtract 20 points, with the reason
        form = page.locator("#adjust-form")
        assert form.locator("select[name=model]").input_value() == "default"
        form.locator("select[name=change]").select_option("points")
        form.locator("input[name=value]").fill("-20")
        form.locator("input[name=reason]").fill("disqualified, student")
        form.get_by_role("button", name="Adjust").click()
        page.wait_for_url(f"{web}/leads/{lead.id}/")
        assert label in page.locator(".messages").inner_text()
        assert page.locator('[data-field="currentScore"]').inner_text() == "60"
        assert label in page.locator("#adjustments").inner_text()
        assert "-20" in page.locator("#adjustments").inner_text()
        assert label in page.locator("#timeline .adjustment").inner_text()
        assert label in page.locator("#breakdown tr.adjustment").inner_text()
        page.screenshot(path=str(SHOTS / "lead-adjusted.png"), full_page=True)

        # zero points are refused, next to the field, and nothing is stored
        form.locator("input[name=value]").fill("0")
        form.locator("input[name=reason]").fill("oops")
        form.get_by_role("button", name="Adjust").click()
        page.wait_for_url(f"{web}/leads/{lead.id}/adjustments/")
        assert "non-zero" in page.locator('#adjust-form [data-error-for="value"]').inner_text()
        page.screenshot(path=str(SHOTS / "lead-adjustment-refused.png"), full_page=True)
        assert in_thread(lambda: Event.objects.filter(lead=lead, type="adjustment").count()) == 1

        # reset the engagement score to 0
        form = page.locator("#adjust-form")
        form.locator("select[name=change]").select_option("setTo")
        form.locator("input[name=value]").fill("0")
        form.locator("input[name=reason]").fill("start over")
        form.get_by_role("button", name="Adjust").click()
        page.wait_for_url(f"{web}/leads/{lead.id}/")
        assert page.locator('[data-field="currentScore"]').inner_text() == "0"
        rows = page.locator("#adjustments tbody tr")
        assert rows.count() == 2 and "Manual reset to 0 by ana@adjust.example: start over" in rows.nth(0).inner_text()
        page.screenshot(path=str(SHOTS / "lead-adjustment-reset.png"), full_page=True)

        # the one console note is the refusal's status (a form posted with an error answers 400)
        refused = (
            f"{web}/leads/{lead.id}/adjustments/ Failed to load resource: the server responded with a status of 400"
        )
        assert errors == [] and [note.startswith(refused) for note in console] == [True]

    lead.refresh_from_db()
    assert lead.current_score == 0 and lead.engagement_score == 0
