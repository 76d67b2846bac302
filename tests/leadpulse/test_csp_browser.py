"""Every page in Chromium under the Content-Security-Policy: no violation, no console message,
and each page's scripts visibly run. The Procfile's web process (uvicorn) on the test
database with real workers, so the live socket and scoring are the real thing."""

import json
import re

import pytest
from django.db import connection
from django.test import Client
from playwright.sync_api import sync_playwright

from ingest.models import Event, Lead
from scoring.models import ScoringRule
from tests.accounts.factories import project_with_owner
from tests.browser.support import console_note, launch_chromium, poll
from tests.live import ROOT, procfile_web, wait_until, worker_env

pytestmark = pytest.mark.live
PASSWORD = "correct horse battery staple"
GOOGLE = "https://accounts.google.com/"
# Report every violation to the test, whichever page or frame it happens on.
REPORTER = """document.addEventListener("securitypolicyviolation", (e) => window.cspViolation({
  page: location.pathname, directive: e.effectiveDirective, blocked: e.blockedURI, sample: e.sample}));"""


@pytest.fixture
def web(live_pipeline):
    # Google sign-in configured: the login page shows its button and the policy lets the form go to Google.
    env = {**worker_env(), "GOOGLE_OAUTH2_KEY": "csp-test.apps.googleusercontent.com", "GOOGLE_OAUTH2_SECRET": "x"}
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    with procfile_web(env, log=ROOT / "test-artifacts" / "web-csp.log") as base:
        yield base


def ingest(key, events):
    try:
        Client().post("/api/events/batch", json.dumps({"events": events}), content_type="application/json",
                      HTTP_X_API_KEY=key)  # fmt: skip
    finally:
        connection.close()


def fill_of(page, selector: str) -> str:
    return page.eval_on_selector(selector, "element => getComputedStyle(element).fill")


def test_every_page_works_under_the_content_security_policy(web):
    project, owner, key = project_with_owner(name="CSP Co")
    owner.is_staff = owner.is_superuser = True  # the admin is a page too
    owner.save(update_fields=["is_staff", "is_superuser"])
    ingest(key, [{"eventType": t, "leadId": "pat", "eventId": f"p{i}"} for i, t in enumerate(["page_view", "signup"])])
    wait_until(lambda: not Event.objects.filter(project=project, processed_at__isnull=True).exists(), message="scoring")
    pat = Lead.objects.get(project=project, anonymous_id="pat")
    rule = ScoringRule.objects.filter(project=project).first()
    assert rule is not None

    violations: list[dict] = []
    console: list[str] = []
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=web)
        context.expose_binding("cspViolation", lambda _source, violation: violations.append(violation))
        context.add_init_script(REPORTER)
        google: list[str] = []
        context.route(f"{GOOGLE}**", lambda route: (google.append(route.request.url), route.fulfill(body="Google")))
        page = context.new_page()
        page.on("console", lambda message: console_note(console, page, message))
        page.on("pageerror", lambda error: errors.append(f"{page.url} {error}"))

        def visit(path: str) -> None:
            response = page.goto(f"{web}{path}")
            assert response is not None and response.status == 200, path
            assert "script-src 'self'" in response.headers["content-security-policy"], path

        # signed out: the pages, then "Sign in with Google" leaves for Google (form-action allows it)
        for path in ("/register/", "/password-reset/", "/login/"):
            visit(path)
        page.get_by_role("button", name="Sign in with Google").click()
        page.wait_for_url(f"{GOOGLE}**")
        assert google[0].startswith(f"{GOOGLE}o/oauth2/auth?") and "client_id=csp-test" in google[0]

        visit("/login/")
        page.fill("input[name=username]", owner.email)
        page.fill("input[name=password]", PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_url(f"{web}/")

        # overview: live.js opened the socket; each chart's nonced <style> applied (pygal's colours, not black)
        page.wait_for_selector('header [data-live="on"]', timeout=15000)
        for chart in ("#chart-per-day", "#chart-stages", "#chart-types"):
            assert fill_of(page, f"{chart} .color-0 rect") == "rgb(228, 87, 46)", chart
            assert fill_of(page, f"{chart} .title") == "rgb(29, 36, 51)", chart

        # a lead: its line chart is styled; leads.js applies a live update to the header
        visit(f"/leads/{pat.id}/")
        assert fill_of(page, ".chart .title") == "rgb(29, 36, 51)"
        page.wait_for_selector('header [data-live="on"]', timeout=15000)
        page.evaluate(
            """id => document.dispatchEvent(new CustomEvent("leadpulse:lead.updated",
                 {detail: {id: id, currentScore: 4321, leadStage: "qualified", previousStage: "warm"}}))""",
            pat.id,
        )
        assert "4321" in page.locator('[data-field="currentScore"]').first.inner_text()

        # events: events.js mirrors the socket state; dashboard.js submits the type filter on change
        visit("/events/")
        poll(page, lambda: page.locator("[data-live-mirror]").inner_text().strip() == "● live", message="the mirror")
        page.select_option("select[name=type]", "signup")
        page.wait_for_url(re.compile(r"/events/\?type=signup"))

        # leads: the live socket comes up here too
        visit("/leads/")
        page.wait_for_selector('header [data-live="on"]', timeout=15000)

        # rules: dashboard.js asks before deleting a rule; dismissed, nothing is deleted
        visit("/rules/")
        dialogs: list[str] = []
        page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.locator(f'form[action="/rules/{rule.id}/delete/"] button').click()
        poll(page, lambda: dialogs, message="the confirmation")
        assert dialogs == ["Delete this rule? The project will be re-scored."]

        # integrations: dashboard.js copies the write key
        visit("/integrations/")
        page.get_by_role("button", name="Copy").first.click()
        page.wait_for_selector("[data-copied]:not([hidden])", timeout=5000)
        assert page.evaluate("navigator.clipboard.readText()") == key

        # simulator: the form posts; events.js applies a live update to the simulated lead's box
        visit("/simulator/")
        page.fill("input[name=event_type]", "demo_request")
        page.fill("input[name=anonymous_id]", "pat")
        page.get_by_role("button", name="Send event").click()
        page.wait_for_selector("[data-sim-lead]")
        # the box is parsed before events.js (at the end of the page) runs and starts listening
        page.wait_for_load_state("load")
        page.evaluate(
            """id => document.dispatchEvent(new CustomEvent("leadpulse:lead.updated",
                 {detail: {id: id, currentScore: 85, previousScore: 35, leadStage: "qualified"}}))""",
            pat.id,
        )
        assert "(was " in page.locator("[data-sim-lead] [data-field=currentScore]").inner_text()

        for path in (
            "/automations/",
            "/models/",
            "/models/default/delete/",
            "/models/default/versions/",
            "/models/default/versions/1/rollback/",
            "/system/",
            "/admin/",
            "/admin/scoring/scoringrule/",
        ):
            visit(path)

        # a draft on the rules page, its preview (the distribution tables) and the diff on the versions page
        visit("/rules/")
        page.get_by_role("button", name="Start a draft").click()
        page.wait_for_selector("#draft-banner")
        page.get_by_role("button", name="Preview the draft").click()
        page.wait_for_selector("#draft-preview #preview-bands")
        visit("/models/default/versions/?number=1")
        visit(f"/leads/{pat.id}/?version=1")
        assert page.locator("[data-version-score]").count() == 1

        # Swagger UI: its start-up script (served from ?script) lists the operations
        visit("/api/docs/")
        page.wait_for_selector(".opblock", timeout=30000)
        assert page.locator(".opblock").count() > 40

        browser.close()

    assert ScoringRule.objects.filter(id=rule.id).exists()  # the dismissed confirmation stopped the form
    assert violations == []
    assert console == []
    assert errors == []
    # the Procfile starts uvicorn without its access log: each request is logged once, by our line, in
    # development's plain logs too (the logging settings used to give uvicorn's access log its handler back)
    log = (ROOT / "test-artifacts" / "web-csp.log").read_text()
    assert " leadpulse.request GET /leads/ 200 " in log
    assert " uvicorn.access " not in log and 'HTTP/1.1" 200' not in log
