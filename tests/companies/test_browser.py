"""Companies in a real browser, on the production topology (uvicorn on the test PostgreSQL, Celery workers, Redis
as broker and channel layer): three leads of one company, each below "hot", make their company hot, and the
companies page, open all along, shows it turn hot without a reload. Screenshots go to test-artifacts/pages/."""

import json

import pytest
from django.db import connection
from django.test import Client

from companies.models import Company, CompanyScore
from ingest.models import Lead
from tests.accounts.factories import project_with_owner
from tests.browser.support import poll
from tests.leadpulse.test_dashboard_browser import SHOTS, settled, signed_in
from tests.leadpulse.test_models_browser import in_thread
from tests.live import wait_until

pytestmark = pytest.mark.live


@pytest.fixture
def web(live_pipeline, live_web):
    """`uvicorn leadpulse.asgi:application`, the Procfile's web process, on the test database (the session's)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    return live_web


def person(name: str, email: str, *events: str) -> list[dict]:
    """A Segment identify call with the work email, then one track call per event."""
    return [
        {"type": "identify", "anonymousId": name, "traits": {"email": email, "name": name.title()},
         "messageId": f"{name}-identify"},
        *({"type": "track", "event": event, "anonymousId": name, "messageId": f"{name}-{i}"}
          for i, event in enumerate(events)),
    ]  # fmt: skip


def segment_batch(key: str, messages: list[dict]) -> None:
    try:
        response = Client().post("/v1/batch", json.dumps({"writeKey": key, "batch": messages}),
                                 content_type="text/plain")  # fmt: skip
        assert response.status_code == 200, response.content
    finally:
        connection.close()


def company_result(project, key: str) -> tuple[int, str] | None:
    try:
        row = CompanyScore.objects.filter(company__project=project, company__key=key, model__is_primary=True).first()
        return (row.score, row.stage) if row else None
    finally:
        connection.close()


def test_three_leads_below_hot_make_their_company_hot_live_on_the_companies_page(web):
    project, owner, key = project_with_owner(name="Companies Browser Co")
    other, _, other_key = project_with_owner(name="Secret Other Co")
    # ann and bob read an email (10 each, cold): Acme is warm on their top scores alone (20)
    segment_batch(key, [*person("ann", "ann@acme.com", "email_open"), *person("bob", "bob@acme.com", "email_open"),
                        *person("pat", "pat@gmail.com", "demo_request")])  # fmt: skip
    segment_batch(other_key, person("zed", "zed@initech.com", "demo_request"))
    wait_until(lambda: company_result(project, "acme.com") == (20, "warm"), timeout=60, message="Acme rolled up")
    wait_until(lambda: settled(project) and settled(other), timeout=60, message="scoring")
    wait_until(lambda: company_result(other, "initech.com") is not None, timeout=60, message="Initech rolled up")
    acme = Company.objects.get(project=project, key="acme.com")
    theirs = Company.objects.get(project=other)

    with signed_in(web, owner.email) as (page, errors, console):
        page.goto(f"{web}/companies/")
        page.wait_for_selector('[data-live="on"]', timeout=15000)  # the WebSocket is up
        page.evaluate("window.__notReloaded = true")
        row = page.locator(f'tr[data-company-id="{acme.id}"]')
        assert row.locator('[data-field="stage"]').inner_text() == "warm"
        assert row.locator('[data-field="score"]').inner_text() == "20"
        assert page.locator("tr[data-company-id]").count() == 1  # gmail names no company; Initech is theirs
        page.screenshot(path=str(SHOTS / "companies-before.png"), full_page=True)

        # cy opens an email and views a page (15, warm): 10 + 10 + 15 and 10 breadth points for cy, engaged
        in_thread(lambda: segment_batch(key, person("cy", "cy@eu.acme.com", "email_open", "page_view")))
        page.wait_for_function(
            f"""() => document.querySelector('tr[data-company-id="{acme.id}"] [data-field="stage"]')
                        .textContent === "hot" """,
            timeout=30000,
        )
        assert row.locator('[data-field="score"]').inner_text() == "45"
        poll(page, lambda: row.locator('[data-field="members"]').inner_text() == "3", message="the member count")
        assert row.locator('[data-field="engaged"]').inner_text() == "1"
        assert page.evaluate("window.__notReloaded") is True  # live, not reloaded
        page.screenshot(path=str(SHOTS / "companies-hot.png"), full_page=True)

        stages = in_thread(lambda: dict(Lead.objects.filter(project=project).values_list("anonymous_id", "lead_stage")))
        assert stages == {"ann": "cold", "bob": "cold", "cy": "warm", "pat": "hot"}  # each member below hot
        assert in_thread(lambda: company_result(project, "acme.com")) == (45, "hot")

        # the company's page: its members, their scores and stages, the breakdown, the chart of its score
        page.goto(f"{web}/companies/{acme.id}/")
        assert page.locator("#company-header [data-field='stage']").inner_text() == "hot"
        members = page.locator("#members tbody tr")
        assert members.count() == 3 and members.first.locator("a").inner_text() == "Cy"
        assert page.locator("#chart-score svg").count() == 1
        assert page.locator("#activity tbody tr").count() >= 5
        page.screenshot(path=str(SHOTS / "company.png"), full_page=True)

        # a member's lead page has the company's card; the leads list its column and filter
        members.first.locator("a").click()
        page.wait_for_selector("#facet-associatedCompany")
        card = page.locator("#facet-associatedCompany")
        assert "acme.com" in card.inner_text() and card.locator('[data-field="companyStage"]').inner_text() == "hot"
        page.screenshot(path=str(SHOTS / "lead-company-card.png"), full_page=True)
        page.goto(f"{web}/leads/?associatedCompany={acme.id}")
        assert page.locator("tr[data-lead-id]").count() == 3
        assert page.locator('td[data-facet="associatedCompany"] a').first.inner_text() == "acme.com"
        page.screenshot(path=str(SHOTS / "leads-of-company.png"), full_page=True)

        assert errors == [] and console == []

        # nothing of the other project: its company is a 404
        assert page.goto(f"{web}/companies/{theirs.id}/").status == 404
        assert "initech" not in page.goto(f"{web}/companies/").text()
