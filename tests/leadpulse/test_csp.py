"""The Content-Security-Policy (django-csp) on every page, and pages it needs no exception for.

The browser side (no violation, the pages' scripts run) is tests/leadpulse/test_csp_browser.py.
"""

import re
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.utils import timezone

from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from scoring.services import lead_score

pytestmark = pytest.mark.django_db

SIGNED_IN = ["/", "/events/", "/leads/", "/rules/", "/automations/", "/simulator/", "/integrations/", "/system/"]
SIGNED_OUT = ["/login/", "/register/", "/password-reset/", "/api/docs/"]


def policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {name: sources for name, *sources in (part.split() for part in header.split(";") if part.strip())}


class InlineCode(HTMLParser):
    """Collect what a strict policy blocks: inline scripts, on* handlers, style attributes, <style> nonces."""

    def __init__(self):
        super().__init__()
        self.inline_scripts = 0
        self.handlers: list[str] = []
        self.style_attributes: list[str] = []
        self.style_nonces: list[str | None] = []
        self._in_script_without_src = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.handlers += [f"{tag} {name}" for name in attributes if name.startswith("on")]
        if "style" in attributes:
            self.style_attributes.append(f"{tag} style={attributes['style']!r}")
        if tag == "script":
            self._in_script_without_src = "src" not in attributes
        if tag == "style":
            self.style_nonces.append(attributes.get("nonce"))

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script_without_src = False

    def handle_data(self, data):
        if self._in_script_without_src and data.strip():
            self.inline_scripts += 1


@pytest.fixture
def scored(tenant):
    events_ingest(
        project_id=tenant.project.id,
        events=[CanonicalEvent(event_id=f"e{i}", name="signup", anonymous_id=f"v{i}", timestamp=timezone.now())
                for i in range(3)],
    )  # fmt: skip
    for lead in tenant.project.leads.all():
        lead_score(lead_id=lead.id)
    return tenant.project.leads.first()


def pages(tenant, lead):
    client = Client()
    for url in SIGNED_OUT:
        yield url, client.get(url)
    client.force_login(tenant.owner)
    for url in [*SIGNED_IN, f"/leads/{lead.id}/"]:
        yield url, client.get(url)


def test_every_page_carries_a_strict_policy(tenant, scored):
    for url, response in pages(tenant, scored):
        assert response.status_code == 200, url
        directives = policy(response)
        assert directives["script-src"] == ["'self'"], url  # no 'unsafe-inline', no nonce, no host
        assert directives["object-src"] == ["'none'"] and directives["frame-ancestors"] == ["'none'"], url
        assert directives["base-uri"] == ["'self'"], url
        assert directives["form-action"][0] == "'self'", url  # and Google's sign-in, when configured
        assert set(directives["form-action"]) <= {"'self'", "https://accounts.google.com"}, url
        assert directives["connect-src"] == ["'self'"], url  # covers the page's own ws:/wss: origin
        assert "'unsafe-inline'" not in directives["style-src"] and "'unsafe-eval'" not in str(directives), url


def test_pages_hold_no_inline_script_handler_or_style_attribute_and_nonce_their_styles(tenant, scored):
    for url, response in pages(tenant, scored):
        found = InlineCode()
        found.feed(response.content.decode())
        assert found.inline_scripts == 0 and found.handlers == [] and found.style_attributes == [], url
        nonces = [re.sub(r"^'nonce-(.*)'$", r"\1", s) for s in policy(response)["style-src"] if s.startswith("'nonce-")]
        # the charts' <style> elements carry this response's nonce; pages without one have no nonce to leak
        assert all(nonce in nonces for nonce in found.style_nonces), url
        assert len(nonces) == (1 if found.style_nonces else 0), url
    overview = Client()
    overview.force_login(tenant.owner)
    charts = InlineCode()
    charts.feed(overview.get("/").content.decode())
    assert len(charts.style_nonces) == 3  # events per day, stages, event types
