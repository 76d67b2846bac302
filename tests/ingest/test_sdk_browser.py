"""The browser SDK (`/sdk/ls.js`) end to end: Debian's Chromium, a third-party page, the embedded server.

Nothing on the server is mocked: the SDK is served by Django, posts Segment batches to `/v1/batch`
across origins, the in-process worker scores and merges, and the assertions read the public API.
"""

import gzip
import json
import re
import uuid
from collections import Counter

import httpx
import pytest
from playwright.sync_api import sync_playwright

from scoring.services import DEFAULT_RULES
from tests.browser.support import launch_chromium, poll, static_site
from tests.live import ROOT, embedded_server

pytestmark = pytest.mark.live

POINTS = dict(DEFAULT_RULES) | {"identify": 0}
ARTIFACTS = ROOT / "test-artifacts"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
# What the visitor types into the form: none of it may leave the page.
SECRETS = {"email": "typed-secret@example.org", "company": "Secret Holdings", "message": "do not send me"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, migrated_sqlite):
    """`manage.py runembedded` on SQLite (one per module), with a registered project of its own."""
    with embedded_server(tmp_path_factory.mktemp("sdk-server"), migrated=migrated_sqlite) as running:
        # default rules only: the expected scores below are computed from them
        tokens = httpx.post(
            f"{running.base}/api/auth/register",
            json={"email": "sdk@example.com", "password": "sdk-test-password", "name": "SDK"},
        ).json()
        api = httpx.Client(base_url=running.base, headers={"Authorization": f"Bearer {tokens['access']}"}, timeout=10)
        write_key = api.get("/api/auth/project").json()["project"]["apiKey"]
        yield type("Server", (), {"base": running.base, "key": write_key, "api": api, "log": running.log})
        api.close()


@pytest.fixture(scope="module")
def site(server, tmp_path_factory):
    """A second origin (another port) whose pages load the SDK from the LeadPulse server."""
    pages = {"landing.html": "landing.html", "manual.html": "manual.html"}
    replacements = {"{{SDK_SRC}}": f"{server.base}/sdk/ls.js", "{{API_KEY}}": server.key}
    with static_site(tmp_path_factory.mktemp("site"), pages=pages, replacements=replacements) as origin:
        yield origin


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


class Wire:
    """Every request the page sends to `/v1/batch`, decoded, and the answers it got."""

    def __init__(self, page, base: str):
        self.url = f"{base}/v1/batch"
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        page.on("request", self._request)
        page.on("response", lambda response: response.url == self.url and self.statuses.append(response.status))

    def _request(self, request) -> None:
        if request.url == self.url:
            self.requests.append(
                {
                    "method": request.method,
                    "type": request.resource_type,
                    "headers": request.headers,
                    "raw": request.post_data or "",
                    # Playwright does not expose a beacon's Blob body: None for those.
                    "body": json.loads(request.post_data or "null"),
                }
            )

    @property
    def messages(self) -> list[dict]:
        return [message for request in self.requests if request["body"] for message in request["body"]["batch"]]

    def named(self, name: str) -> list[dict]:
        return [m for m in self.messages if m.get("event") == name or (m["type"] != "track" and m["type"] == name)]


# When the SDK hands each batch to the browser and when the answer reaches the page, read from the page's
# own clock: the times at which Playwright reports requests to this process vary with the machine's load.
SENDS_SCRIPT = """(() => {
    const sends = [];
    Object.defineProperty(window, "__sends", {value: sends});
    const fetch = window.fetch, sendBeacon = navigator.sendBeacon;
    window.fetch = function () {
        const send = {via: "fetch", start: performance.now(), end: null};
        sends.push(send);
        const answered = fetch.apply(this, arguments);
        const done = () => { send.end = performance.now(); };
        answered.then(done, done);  // runs before the SDK's own handlers: attached first
        return answered;
    };
    navigator.sendBeacon = function () {
        sends.push({via: "beacon", start: performance.now(), end: null});
        return sendBeacon.apply(this, arguments);
    };
})();"""


def sends(page) -> list[dict]:
    return page.evaluate("window.__sends")


def watch(page) -> dict[str, list]:
    """Console messages and uncaught errors of the page: the SDK must produce neither."""
    seen: dict[str, list] = {"console": [], "errors": []}
    page.on("console", lambda message: seen["console"].append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: seen["errors"].append(str(error)))
    return seen


def lead_by_anonymous_id(server, anonymous_id: str) -> dict | None:
    results = server.api.get("/api/leads", params={"anonymousId": anonymous_id}).json()["results"]
    return results[0] if results else None


def timeline(server, lead_id: int) -> dict:
    response = server.api.get(f"/api/leads/{lead_id}/timeline")
    assert response.status_code == 200, response.text
    return response.json()


def fully_scored(server, lead_id: int, expected: Counter) -> dict | None:
    """The lead's timeline once it holds exactly `expected` event types, all scored, and the score is their sum."""
    data = timeline(server, lead_id)
    events = data["events"]
    if Counter(e["eventType"] for e in events) != expected or any(e["scoreDelta"] is None for e in events):
        return None
    if data["lead"]["currentScore"] != sum(POINTS[name] * count for name, count in expected.items()):
        return None
    return data


def scored(server, anonymous_id: str, expected: Counter) -> dict | None:
    lead = lead_by_anonymous_id(server, anonymous_id)
    return fully_scored(server, lead["id"], expected) if lead else None


def test_sdk_tracks_scores_and_merges_a_visitor_into_the_known_lead(server, site, browser):
    # A lead the project already knows (from its backend, through the Segment API), with an event of its own.
    known = {"writeKey": server.key, "userId": "u-known", "anonymousId": "known-device"}
    response = httpx.post(f"{server.base}/v1/identify", json={**known, "traits": {"email": "buyer@example.com"}})
    assert response.status_code == 200 and response.json()["success"] is True, response.text
    response = httpx.post(f"{server.base}/v1/track", json={**known, "event": "pricing_page_visit"})
    assert response.status_code == 200, response.text

    def known_lead():
        results = server.api.get("/api/leads", params={"search": "buyer@example.com"}).json()["results"]
        return results[0] if len(results) == 1 and results[0]["currentScore"] == POINTS["pricing_page_visit"] else None

    known_id = poll(None, known_lead, message="the known lead to be created with its email and scored")["id"]

    context = browser.new_context(viewport={"width": 900, "height": 640})
    context.add_init_script("window.__globalsBefore = Object.getOwnPropertyNames(window);")
    page = context.new_page()
    seen = watch(page)
    wire = Wire(page, server.base)

    page.goto(f"{site}/landing.html")  # automatic page_view
    anonymous_id = page.evaluate("LS.anonymousId()")
    assert UUID_RE.match(anonymous_id)
    assert page.evaluate("localStorage.getItem('ls_anon_id')") == anonymous_id
    added = page.evaluate("Object.getOwnPropertyNames(window).filter(n => !window.__globalsBefore.includes(n))")
    assert added == ["__globalsBefore", "LS"]  # the SDK's only global (the other is this test's)
    page.click("#demo span")  # the click lands on a child of the data-ls-event element
    for field, value in SECRETS.items():
        page.fill(f"[name={field}]", value)
    page.click("#contact button[type=submit]")
    page.evaluate("LS.track('signup')")
    page.evaluate("history.pushState({}, '', '/pricing?plan=team')")  # a second, SPA page_view
    poll(page, lambda: len(wire.messages) == 5 and len(wire.statuses) == len(wire.requests), message="5 messages")
    assert page.url == f"{site}/pricing?plan=team"  # the form did not navigate

    # Scored on the anonymous lead first: 5 + 50 + 20 + 30 + 5.
    browser_events = Counter(page_view=2, demo_request=1, form_submit=1, signup=1)

    def anonymous_lead():
        lead = lead_by_anonymous_id(server, anonymous_id)
        return lead if lead and fully_scored(server, lead["id"], browser_events) else None

    anonymous_lead_id = poll(page, anonymous_lead, message="the browser's anonymous lead to be scored")["id"]
    assert anonymous_lead_id != known_id

    page.evaluate("LS.identify('buyer@example.com', {name: 'Buyer'})")
    poll(page, lambda: wire.named("identify") and len(wire.statuses) == len(wire.requests), message="the identify")

    # The identify merges the anonymous lead into the known one, which is refolded with every event.
    expected = browser_events + Counter(identify=2, pricing_page_visit=1)
    state: dict = {}

    def merged():
        state["detail"] = server.api.get(f"/api/leads/{anonymous_lead_id}").json()
        state["timeline"] = timeline(server, known_id)
        return state["detail"].get("id") == known_id and fully_scored(server, known_id, expected)

    try:
        survivor = poll(page, merged, timeout=45, message="the merge into the known lead")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen: {json.dumps(state, indent=1)[:4000]}") from None
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "sdk-page.png"), full_page=True)

    lead, events = survivor["lead"], survivor["events"]
    assert lead["id"] == known_id and lead["email"] == "buyer@example.com"
    assert lead["currentScore"] == 110 + POINTS["pricing_page_visit"] == sum(e["scoreDelta"] for e in events)
    assert lead["name"] == "Buyer", lead
    results = server.api.get("/api/leads", params={"search": "buyer@example.com"}).json()["results"]
    assert [r["id"] for r in results] == [known_id]
    # the API follows the merge (the company's and the prediction's facets are recomputed after the batch, by its
    # follow-up task, and may have moved since the read above)
    followed = server.api.get(f"/api/leads/{anonymous_lead_id}").json()
    settled = {"associatedCompany", "conversionProbability", "outcome"}
    assert {k: v for k, v in followed.items() if k not in settled} == {
        k: v for k, v in lead.items() if k not in settled
    }

    by_type: dict[str, list[dict]] = {}
    for event in events:
        by_type.setdefault(event["eventType"], []).append(event["properties"])
    first, second = by_type["page_view"]
    assert first == {
        "url": f"{site}/landing.html",
        "path": "/landing.html",
        "referrer": "",
        "title": "Acme Analytics: pricing",
    }
    assert second == {
        "url": f"{site}/pricing?plan=team",
        "path": "/pricing",
        "referrer": f"{site}/landing.html",
        "title": "Acme Analytics: pricing",
    }
    assert by_type["demo_request"] == [{"plan": "enterprise"}]
    assert by_type["form_submit"] == [
        {
            "formId": "contact",
            "formName": "contact",
            "action": f"{site}/thanks",
            "fields": ["email", "company", "message"],  # names only
        }
    ]
    assert by_type["signup"] == [{}]
    assert {"email": "buyer@example.com", "name": "Buyer"} in by_type["identify"]

    # The wire: Segment batches as CORS simple requests, nothing typed into the form.
    assert wire.requests and all(r["method"] == "POST" for r in wire.requests)
    assert all(r["headers"].get("content-type") == "text/plain" for r in wire.requests)
    assert set(wire.statuses) == {200}
    for secret in SECRETS.values():
        assert all(secret not in r["raw"] for r in wire.requests)
    assert all(r["body"]["writeKey"] == server.key and ISO_RE.match(r["body"]["sentAt"]) for r in wire.requests)
    messages = wire.messages
    assert len(messages) == 6 and len({m["messageId"] for m in messages}) == 6
    assert all(UUID_RE.match(m["messageId"]) and ISO_RE.match(m["timestamp"]) for m in messages)
    assert {m["anonymousId"] for m in messages} == {anonymous_id}
    assert len({m["context"]["sessionId"] for m in messages}) == 1
    assert all(m["context"]["library"] == {"name": "leadpulse.js", "version": "1.0.0"} for m in messages)
    assert all(m["context"]["userAgent"] and m["context"]["page"]["url"].startswith(site) for m in messages)
    (identify,) = wire.named("identify")
    assert "userId" not in identify and identify["traits"] == {"email": "buyer@example.com", "name": "Buyer"}
    access_log = server.log.read_text()
    assert '"POST /v1/batch' in access_log and '"OPTIONS /v1/batch' not in access_log  # no preflight

    assert seen == {"console": [], "errors": []}
    context.close()


def test_queued_events_leave_with_sendbeacon_when_the_page_hides_or_closes(server, site, browser):
    context = browser.new_context()
    context.add_init_script(SENDS_SCRIPT)
    page = context.new_page()
    seen = watch(page)
    wire = Wire(page, server.base)
    page.goto(f"{site}/landing.html")
    poll(page, lambda: wire.statuses == [200], message="the automatic page_view")
    anonymous_id = page.evaluate("LS.anonymousId()")

    # Hidden tab: the queue leaves at once as a beacon, not after the 1 s batching delay.
    sent = page.evaluate(
        """() => {
            LS.track("download", {file: "whitepaper.pdf"});
            Object.defineProperty(document, "visibilityState", {configurable: true, get: () => "hidden"});
            document.dispatchEvent(new Event("visibilitychange"));
            delete document.visibilityState;
            return window.__sends.map(send => send.via);
        }"""
    )
    assert sent == ["fetch", "beacon"]  # the beacon left within the event, before any timer could run
    poll(page, lambda: len(wire.requests) == 2, message="the beacon")
    beacon = wire.requests[1]
    assert beacon["type"] == "ping", beacon  # navigator.sendBeacon
    assert beacon["headers"].get("content-type") == "text/plain"
    expected = Counter(page_view=1, download=1)
    data = poll(page, lambda: scored(server, anonymous_id, expected), message="the beacon's event")
    assert [e["properties"] for e in data["events"] if e["eventType"] == "download"] == [{"file": "whitepaper.pdf"}]
    page.wait_for_timeout(1200)
    assert len(wire.requests) == 2  # the flush timer found the queue empty: nothing sent twice

    # Closing the page: pagehide hands the queue to the browser, which delivers it after the page is gone.
    page.evaluate("LS.track('webinar_attendance')")
    page.close(run_before_unload=True)
    expected = Counter(page_view=1, download=1, webinar_attendance=1)
    poll(
        None,
        lambda: scored(server, anonymous_id, expected),
        timeout=20,
        message="the events of the closed page to be stored and scored",
    )
    assert seen == {"console": [], "errors": []}
    context.close()


def test_failed_batches_are_retried_with_backoff_and_stored_once(server, site, browser):
    """Fault injection at the browser's network layer (the server is real): 503, then a dropped connection."""
    context = browser.new_context()
    context.add_init_script(SENDS_SCRIPT)
    page = context.new_page()
    seen = watch(page)
    attempts: list[tuple[str, list[str]]] = []

    def flaky(route):
        ids = [m["messageId"] for m in json.loads(route.request.post_data)["batch"]]
        attempts.append((route.request.post_data, ids))
        if len(attempts) == 1:
            route.fulfill(status=503, body="unavailable")
        elif len(attempts) == 2:
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route(f"{server.base}/v1/batch", flaky)
    page.goto(f"{site}/landing.html")
    poll(page, lambda: len(attempts) >= 3, timeout=15, message="two retries")
    page.wait_for_timeout(500)
    anonymous_id = page.evaluate("LS.anonymousId()")
    assert len(attempts) == 3, attempts  # delivered on the third attempt, then no more
    assert attempts[0][1] == attempts[1][1] == attempts[2][1]  # the same messages, so the server can dedupe
    # Exponential backoff: 1 s, then 2 s, from the failed answer to the next attempt (the page's clock).
    first, second, third = sends(page)[:3]
    assert 950 <= second["start"] - first["end"] < 2000, sends(page)
    assert 1950 <= third["start"] - second["end"] < 4000, sends(page)
    poll(page, lambda: scored(server, anonymous_id, Counter(page_view=1)), message="the retried page_view, once")
    # A 4xx is final: the SDK drops the batch instead of retrying it.
    page.unroute(f"{server.base}/v1/batch")
    rejected: list[str] = []
    page.route(
        f"{server.base}/v1/batch", lambda route: (rejected.append(route.request.post_data), route.fulfill(status=400))
    )
    page.evaluate("LS.track('email_open')")
    poll(page, lambda: rejected, message="the batch answered 400")
    page.wait_for_timeout(2500)  # past the 1 s (and 2 s) a retry would wait
    assert len(rejected) == 1
    # The browser itself reports the injected failures; the SDK adds nothing and throws nothing.
    assert all(line.startswith("error: Failed to load resource") for line in seen["console"]), seen
    assert seen["errors"] == []
    context.close()


def test_batches_of_twenty_sessions_and_user_ids(server, site, browser):
    context = browser.new_context()
    context.add_init_script(SENDS_SCRIPT)
    page = context.new_page()
    seen = watch(page)
    wire = Wire(page, server.base)
    page.goto(f"{site}/landing.html")
    poll(page, lambda: wire.statuses == [200], message="the automatic page_view")
    anonymous_id = page.evaluate("LS.anonymousId()")
    session = wire.messages[0]["context"]["sessionId"]

    # 20 queued messages leave at once, in batches of at most 20; the rest after the 1 s delay.
    sent = page.evaluate("""() => {
        const before = window.__sends.length;
        for (let i = 0; i < 45; i++) LS.track('email_open', {i});
        return window.__sends.length - before;
    }""")
    assert sent == 2  # two full batches left within the calls, without waiting
    poll(page, lambda: len(wire.requests) == 4, message="the remainder after the delay")
    assert sends(page)[3]["start"] - sends(page)[2]["start"] >= 990  # the remainder waited for the 1 s delay
    assert [len(r["body"]["batch"]) for r in wire.requests] == [1, 20, 20, 5]
    assert [m["properties"]["i"] for m in wire.messages[1:]] == list(range(45))
    assert {m["context"]["sessionId"] for m in wire.messages} == {session}

    # After 30 idle minutes a new session starts, and then it is kept.
    page.evaluate("localStorage.setItem('ls_session_ts', String(Date.now() - 31 * 60 * 1000))")
    page.evaluate("LS.track('download'); LS.track('download')")
    poll(page, lambda: len(wire.messages) == 48, message="two downloads")
    (new_session,) = {m["context"]["sessionId"] for m in wire.messages[-2:]}
    assert new_session != session and UUID_RE.match(new_session)

    # A user id (no "@") is sent as userId and kept across page loads; reset() forgets it.
    page.evaluate("LS.identify('u-42', {plan: 'team'})")
    poll(page, lambda: len(wire.messages) == 49, message="the identify")
    page.reload()  # its automatic page_view carries the user id
    poll(page, lambda: len(wire.messages) == 50, message="the next page_view")
    identify, page_view = wire.messages[-2:]
    assert identify["type"] == "identify" and identify["userId"] == "u-42" and identify["traits"] == {"plan": "team"}
    assert page_view["type"] == "page" and page_view["userId"] == "u-42"
    assert page_view["anonymousId"] == anonymous_id and page_view["context"]["sessionId"] == new_session
    page.evaluate("LS.reset(); LS.track('signup')")
    poll(page, lambda: len(wire.messages) == 51, message="the signup after reset()")
    signup = wire.messages[-1]
    assert "userId" not in signup and signup["anonymousId"] != anonymous_id
    assert signup["context"]["sessionId"] != new_session
    assert page.evaluate("localStorage.getItem('ls_user_id')") is None
    assert set(wire.statuses) == {200}

    expected = Counter(page_view=2, email_open=45, download=2, identify=1)
    data = poll(page, lambda: scored(server, anonymous_id, expected), message="the first visitor's events")
    assert data["lead"]["currentScore"] == 2 * 5 + 45 * 10 + 2 * 15
    assert seen == {"console": [], "errors": []}
    context.close()


def test_calls_before_init_are_queued_and_ids_fall_back_to_a_cookie(server, site, browser):
    context = browser.new_context()
    # A browser where localStorage throws (e.g. storage blocked for the site).
    context.add_init_script(
        """Object.defineProperty(window, "localStorage", {
            configurable: true, get() { throw new DOMException("blocked", "SecurityError"); }
        });"""
    )
    page = context.new_page()
    seen = watch(page)
    wire = Wire(page, server.base)
    page.goto(f"{site}/manual.html")  # tracks pricing_page_visit before any init
    page.wait_for_timeout(1500)
    assert wire.requests == []  # nowhere to send yet
    page.evaluate(f"LS.init({{apiKey: {json.dumps(server.key)}, host: {json.dumps(server.base)}}})")
    poll(page, lambda: len(wire.messages) == 2 and wire.statuses == [200] * len(wire.requests), message="the queue")
    assert [m.get("event") or m["type"] for m in wire.messages] == ["pricing_page_visit", "page"]
    anonymous_id = page.evaluate("LS.anonymousId()")
    cookies = {c["name"]: c["value"] for c in context.cookies()}
    assert cookies["ls_anon_id"] == anonymous_id and UUID_RE.match(anonymous_id)
    assert UUID_RE.match(cookies["ls_session_id"])
    # The id survives a reload through the cookie; reset() starts a new visitor.
    page.reload()
    assert page.evaluate("LS.anonymousId()") == anonymous_id
    page.evaluate("LS.reset()")
    assert page.evaluate("LS.anonymousId()") not in (anonymous_id, None)
    assert uuid.UUID(page.evaluate("LS.anonymousId()")).version == 4
    expected = Counter(pricing_page_visit=1, page_view=1)
    poll(page, lambda: scored(server, anonymous_id, expected), message="the queued events to be scored")
    assert seen == {"console": [], "errors": []}
    context.close()


def test_the_sdk_is_small_and_served_to_any_origin(server):
    response = httpx.get(f"{server.base}/sdk/ls.js", headers={"Origin": "https://shop.example"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/javascript")
    assert response.headers.get("access-control-allow-origin") == "*"
    source = (ROOT / "ingest" / "sdk" / "ls.js").read_bytes()
    assert response.content == source
    assert len(gzip.compress(source, compresslevel=9)) < 5 * 1024
    assert b"console." not in source
