"""Outcomes in a real browser, on the production topology (uvicorn on the test PostgreSQL, Celery workers, Redis):
a member records a lead as won on its page, sees the badge in the leads list and filters by it, replaces it with a
loss, clears it; a `contract_signed` event marks another lead as won. Screenshots go to test-artifacts/pages/."""

import pytest

from accounts.models import Membership
from ingest.models import Lead
from predictions.models import Outcome
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


def test_a_member_records_and_clears_an_outcome_on_the_lead_page(web):
    project, _owner, key = project_with_owner(name="Outcome Co")
    member = UserFactory(email="ola@outcome.example")
    Membership.objects.create(user=member, project=project, role=Membership.Role.MEMBER)
    ingest(key, [{"eventType": "demo_request", "leadId": "ann", "eventId": "a1"},
                 {"eventType": "contract_signed", "leadId": "bob", "eventId": "b1"}])  # fmt: skip
    wait_until(lambda: settled(project), timeout=60, message="scoring")
    ann = Lead.objects.get(project=project, anonymous_id="ann")
    bob = Lead.objects.get(project=project, anonymous_id="bob")
    wait_until(lambda: Outcome.objects.filter(lead=bob).exists(), message="bob's won outcome from his event")

    with signed_in(web, member.email) as (page, errors, console):
        page.goto(f"{web}/leads/{ann.id}/")
        card = page.locator("#facet-outcome")
        assert "No outcome recorded." in card.inner_text()

        form = page.locator("#outcome-form")
        form.locator("select[name=outcome]").select_option("won")
        form.locator("input[name=value]").fill("1200")
        form.locator("input[name=at]").fill("2026-03-01T10:30")
        form.locator("input[name=reason]").fill("signed the annual plan")
        form.get_by_role("button", name="Record").click()
        page.wait_for_url(f"{web}/leads/{ann.id}/#facet-outcome")
        assert "Recorded as won." in page.locator(".messages").inner_text()
        current = page.locator("#outcome-current").inner_text()
        assert "won" in current and "1200.00" in current and "signed the annual plan" in current
        page.screenshot(path=str(SHOTS / "lead-outcome-won.png"), full_page=True)

        page.goto(f"{web}/leads/?outcome=won")
        rows = page.locator("tbody tr")
        assert rows.count() == 2  # ann by hand, bob by his contract_signed event
        assert page.locator('td[data-facet="outcome"] [data-outcome="won"]').count() == 2
        page.screenshot(path=str(SHOTS / "leads-outcome-won.png"), full_page=True)

        page.goto(f"{web}/leads/{ann.id}/")
        page.locator("#outcome-form select[name=outcome]").select_option("lost")
        page.locator("#outcome-form").get_by_role("button", name="Record").click()
        page.wait_for_url(f"{web}/leads/{ann.id}/#facet-outcome")
        assert "lost" in page.locator("#outcome-current").inner_text()
        page.locator("#outcome-clear-form").get_by_role("button", name="Clear").click()
        page.wait_for_url(f"{web}/leads/{ann.id}/#facet-outcome")
        assert "No outcome recorded." in page.locator("#facet-outcome").inner_text()
        assert errors == [] and console == []

    assert in_thread(lambda: list(Outcome.objects.filter(project=project).values_list("lead_id", "source"))) == [
        (bob.id, "event")
    ]
