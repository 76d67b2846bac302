"""The dashboard in a real browser against the production topology: uvicorn (ASGI) on the test
PostgreSQL, Celery workers, Redis as broker and channel layer. Screenshots go to test-artifacts/pages/."""

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection
from django.test import Client
from playwright.sync_api import Page, sync_playwright

from ingest.models import Event, Lead
from tests.accounts.factories import project_with_owner
from tests.browser.support import console_note, launch_chromium, poll
from tests.live import ROOT, wait_until

pytestmark = pytest.mark.live
SHOTS = ROOT / "test-artifacts" / "pages"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def web(live_pipeline, live_web):
    """`uvicorn leadpulse.asgi:application`, the Procfile's web process, on the test database (the session's)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    return live_web


def ingest(key, events):
    try:
        Client().post("/api/events/batch", json.dumps({"events": events}), content_type="application/json",
                      HTTP_X_API_KEY=key)  # fmt: skip
    finally:
        connection.close()


def settled(project):
    return not Event.objects.filter(project=project, processed_at__isnull=True).exists()


def sign_in(page, base, email):
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/")


@contextmanager
def signed_in(base: str, email: str, *, height: int = 900) -> Iterator[tuple[Page, list[str], list[str]]]:
    """Chromium signed in as `email` on `base`: yields the page, its uncaught errors and its console's
    errors and warnings (`console_note`); the browser closes after."""
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_context(viewport={"width": 1280, "height": height}).new_page()
        errors: list[str] = []
        console: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: console_note(console, page, message))
        try:
            sign_in(page, base, email)
            yield page, errors, console
        finally:
            browser.close()


def test_sign_in_see_charts_open_a_lead_and_watch_a_score_change_without_reload(web):
    project, owner, key = project_with_owner(name="Browser Co")
    other, other_owner, other_key = project_with_owner(name="Secret Other Co")
    ingest(key, [{"eventType": t, "leadId": "pat", "eventId": f"p{i}"} for i, t in enumerate(["page_view", "signup"])])
    ingest(key, [{"eventType": "page_view", "leadId": f"v{i}", "eventId": f"v{i}"} for i in range(5)])
    ingest(other_key, [{"eventType": "demo_request", "leadId": "their-lead", "eventId": "t1"}])
    wait_until(lambda: settled(project) and settled(other), timeout=60, message="scoring")
    pat = Lead.objects.get(project=project, anonymous_id="pat")
    theirs = Lead.objects.get(project=other, anonymous_id="their-lead")
    assert pat.current_score == 35

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))

        # sign in, the overview with its charts
        sign_in(page, web, owner.email)
        assert page.locator("#chart-per-day svg").count() == 1
        assert page.locator("#chart-stages svg rect, #chart-stages svg path").count() > 0
        page.wait_for_selector('[data-live="on"]', timeout=15000)  # the WebSocket is up
        page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)

        # a lead's page
        page.goto(f"{web}/leads/{pat.id}/")
        assert "35" in page.locator('[data-field="currentScore"]').first.inner_text()
        page.screenshot(path=str(SHOTS / "lead.png"), full_page=True)

        # the leads page stays open; the simulator, in a second tab, sends an event for pat
        page.goto(f"{web}/leads/")
        page.wait_for_selector('[data-live="on"]', timeout=15000)
        page.evaluate("window.__notReloaded = true")
        row = page.locator(f'tr[data-lead-id="{pat.id}"] [data-field="currentScore"]')
        assert row.inner_text().strip() == "35"
        page.screenshot(path=str(SHOTS / "leads.png"), full_page=True)

        simulator = context.new_page()
        simulator.goto(f"{web}/simulator/")
        simulator.fill("input[name=event_type]", "demo_request")
        simulator.fill("input[name=anonymous_id]", "pat")
        simulator.get_by_role("button", name="Send event").click()
        simulator.wait_for_selector("[data-status]")
        simulator.screenshot(path=str(SHOTS / "simulator.png"), full_page=True)

        poll(page, lambda: row.inner_text().strip() == "85", timeout=30, message="the live score on the leads page")
        assert page.evaluate("window.__notReloaded") is True
        assert "qualified" in page.locator(f'tr[data-lead-id="{pat.id}"] [data-field="leadStage"]').inner_text()

        # every page renders; nothing of the other project appears; its lead is a 404
        for name in ("events", "rules", "automations", "integrations", "system"):
            response = page.goto(f"{web}/{name}/")
            assert response.status == 200, name
            assert "Secret Other Co" not in page.content() and other_key not in page.content()
            page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
        assert page.goto(f"{web}/leads/{theirs.id}/").status == 404
        assert "their-lead" not in page.goto(f"{web}/leads/?search=their").text()

        assert errors == []
        browser.close()
    assert other_owner  # the other user never signed in here
