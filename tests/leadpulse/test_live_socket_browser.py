"""The dashboard's live socket in a real browser against the production topology (uvicorn, Redis as
channel layer, Celery workers): it stays up while idle, and a reconnect does not lose what was broadcast
while it was down."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from playwright.sync_api import sync_playwright

from ingest.models import Lead
from tests.accounts.factories import project_with_owner
from tests.browser.support import launch_chromium, poll
from tests.leadpulse.test_dashboard_browser import ingest, settled, sign_in
from tests.live import ROOT, wait_until, web_server

pytestmark = pytest.mark.live
LOG = ROOT / "test-artifacts" / "live-socket-web.log"
# What an idle socket must outlive, made short enough to outlive several times over in IDLE_SECONDS:
# the channel layer's 5 s blocking reads on Redis (BZPOPMIN; Round 1's socket died at the first), uvicorn's
# WebSocket pings (20 s, and 20 s for the pong, by default) and the health check redis-py runs on a channel-layer
# connection idle for longer than its interval (30 s by default). Production keeps the defaults.
IDLE_SECONDS = 21
SHORT_PINGS = ("--ws-ping-interval", "5", "--ws-ping-timeout", "5")
SHORT_HEALTH_CHECKS = {"LEADPULSE_CHANNEL_LAYER_HEALTH_CHECK_SECONDS": "5"}

# Counts the sockets each page opens and how they close, whatever code opens them.
COUNT_SOCKETS = """
(() => {
  const Native = window.WebSocket;
  const counts = (window.__sockets = { opens: 0, closes: [] });
  window.WebSocket = function (url, protocols) {
    const socket = protocols === undefined ? new Native(url) : new Native(url, protocols);
    socket.addEventListener("open", () => { counts.opens += 1; });
    socket.addEventListener("close", (event) => { counts.closes.push(event.code); });
    return socket;
  };
  window.WebSocket.prototype = Native.prototype;
  Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
})();
"""


def off_loop(function, *args):
    """Run ORM code while sync Playwright's event loop holds this thread (Django refuses it here)."""

    def run():
        try:
            return function(*args)
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def ingest_and_score(key, project, events):
    off_loop(ingest, key, events)
    wait_until(lambda: off_loop(settled, project), timeout=60, message="scoring")


def leads_page(browser, base, owner):
    context = browser.new_context()
    context.add_init_script(COUNT_SOCKETS)
    page = context.new_page()
    sign_in(page, base, owner.email)
    page.goto(f"{base}/leads/")
    page.wait_for_selector('header [data-live="on"]', timeout=15000)
    return page


def test_an_idle_page_keeps_its_one_socket_and_sees_a_score_change_live(live_pipeline):
    project, owner, key = project_with_owner(name="Idle Co")
    ingest_and_score(key, project, [{"eventType": "page_view", "leadId": "pat", "eventId": "pat-1"}])
    pat = Lead.objects.get(project=project, anonymous_id="pat")
    LOG.parent.mkdir(parents=True, exist_ok=True)
    LOG.write_text("")

    with web_server(LOG, args=SHORT_PINGS, env=SHORT_HEALTH_CHECKS) as base, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = leads_page(browser, base, owner)
        score = page.locator(f'tr[data-lead-id="{pat.id}"] [data-field="currentScore"]')
        assert score.inner_text().strip() == "5"

        # when the page sits idle (4 of the channel layer's blocking reads, 4 pings, 4 health-check intervals)
        page.wait_for_timeout(IDLE_SECONDS * 1000)
        off_loop(ingest, key, [{"eventType": "demo_request", "leadId": "pat", "eventId": "pat-2"}])

        # then the change arrives on the one socket it opened, which never closed
        poll(page, lambda: score.inner_text().strip() == "55", timeout=30, message="the live score")
        assert page.evaluate("window.__sockets") == {"opens": 1, "closes": []}
        browser.close()


def test_a_change_broadcast_while_the_socket_was_down_shows_after_the_reconnect(live_pipeline):
    project, owner, key = project_with_owner(name="Restart Co")
    ingest_and_score(key, project, [{"eventType": "page_view", "leadId": "pat", "eventId": "pat-1"}])
    pat = Lead.objects.get(project=project, anonymous_id="pat")
    LOG.parent.mkdir(parents=True, exist_ok=True)
    LOG.write_text("")

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        with web_server(LOG) as base:
            port = int(base.rsplit(":", 1)[1])  # the restart below comes back on the same port
            page = leads_page(browser, base, owner)
            page.evaluate("window.__notReloaded = true")
        # the web process restarts (a deploy): the page is offline when the lead's update is broadcast
        poll(page, lambda: page.get_attribute("header [data-live]", "data-live") != "on", message="the page offline")
        ingest_and_score(key, project, [{"eventType": "demo_request", "leadId": "pat", "eventId": "pat-2"}])

        with web_server(LOG, port=port):
            row = page.locator(f'tr[data-lead-id="{pat.id}"]')
            poll(page, lambda: row.locator('[data-field="currentScore"]').inner_text().strip() == "55", timeout=60,
                 message="the missed score after the reconnect")  # fmt: skip
            assert row.locator('[data-field="leadStage"]').inner_text() == "hot"
            assert page.evaluate("window.__notReloaded") is True
            assert page.evaluate("window.__sockets.opens") == 2
        browser.close()
