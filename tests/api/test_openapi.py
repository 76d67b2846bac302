"""The OpenAPI document at /api/schema/ and Swagger UI at /api/docs/ (fuzzed in tests/api/test_fuzz.py)."""

import json

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from playwright.sync_api import sync_playwright

from accounts.services import secret_key_create
from core.openapi import canonical_endpoints
from tests.browser.support import launch_chromium
from tests.live import ROOT
from tests.scoring.factories import scored_lead

SHOTS = ROOT / "test-artifacts" / "pages"

pytestmark = pytest.mark.django_db


def document() -> dict:
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200, response.content[:500]
    return json.loads(response.content)


def api_routes() -> set[str]:
    """Every route of the URLconf, as OpenAPI paths ("/api/leads/{lead_id}")."""

    def walk(patterns, prefix=""):
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern):
                yield "/" + route.replace("<str:", "{").replace("<int:", "{").replace(">", "}")

    return set(walk(get_resolver().url_patterns))


def test_the_document_generates_and_validates_without_a_single_warning(tmp_path):
    # --fail-on-warn turns any view the generator cannot describe (a guessed body, an unknown
    # auth class, an operationId collision) into a failure, and --validate checks it against the OpenAPI spec.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))


def test_every_api_route_is_documented_once_and_aliases_are_not():
    paths = set(document()["paths"])
    routes = api_routes()
    expected = {path for path, *_ in canonical_endpoints([(r, "", "", None) for r in routes])}
    expected -= {"/api/schema/", "/api/docs/"}
    assert paths == expected
    assert "/api/rules/{rule_id}" in paths and "/api/scoring-rules/{rule_id}" not in paths
    assert "/v1/track" in paths and "/v1/t" not in paths and "/api/v1/track" not in paths


def test_auth_schemes_and_the_one_error_shape_are_declared():
    doc = document()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["jwtAuth"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert schemes["secretKey"]["scheme"] == "bearer"
    assert schemes["writeKeyHeader"] == {**schemes["writeKeyHeader"], "type": "apiKey", "in": "header",
                                         "name": "X-API-Key"}  # fmt: skip
    assert schemes["writeKeyBasic"]["scheme"] == "basic"
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    detail = doc["components"]["schemas"]["ErrorDetail"]
    assert set(detail["properties"]) == {"code", "message", "fields"}

    leaderboard = doc["paths"]["/api/leaderboard"]["get"]
    assert {"jwtAuth": []} in leaderboard["security"] and {"secretKey": []} in leaderboard["security"]
    for code in ("400", "401", "404", "429"):
        assert leaderboard["responses"][code]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }
    assert "Retry-After" in leaderboard["responses"]["429"]["headers"]
    assert "403" in doc["paths"]["/api/rules"]["post"]["responses"]  # writes can be refused to members
    assert doc["paths"]["/api/events"]["post"]["security"] == [{"writeKeyHeader": []}]
    assert {"writeKeyBasic": []} in doc["paths"]["/v1/batch"]["post"]["security"]


def test_every_optional_query_parameter_may_be_empty():
    query = [p for item in document()["paths"].values() for op in item.values() for p in op.get("parameters", [])
             if p["in"] == "query"]  # fmt: skip
    assert len(query) > 20 and all(p.get("allowEmptyValue") for p in query if not p.get("required"))


def test_operation_ids_are_unique():
    ids = [op["operationId"] for item in document()["paths"].values() for op in item.values() if "operationId" in op]
    assert len(ids) == len(set(ids)) > 40


def test_the_document_needs_no_credentials_and_swagger_ui_ships_its_own_assets():
    docs = Client().get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html  # no CDN
    asset = Client().get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status_code == 200


@pytest.mark.django_db(transaction=True)
def test_swagger_ui_in_a_browser_lists_the_api_and_calls_it_with_a_secret_key(live_server, tenant):
    scored_lead(tenant.project, "swagger-visitor", "page_view", "demo_request")
    _key, raw = secret_key_create(project=tenant.project)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page()
            page.goto(f"{live_server.url}/api/docs/")
            page.wait_for_selector(".opblock", timeout=30_000)
            assert "LeadPulse API" in page.inner_text(".info")
            assert page.locator(".opblock").count() == sum(
                1 for item in document()["paths"].values() for method in item if method != "parameters"
            )
            # Authorize with the secret key, then "Try it out" on the leaderboard.
            page.click("button.authorize")
            page.fill("div.modal-ux input[type=text] >> nth=1", raw)  # [jwtAuth, secretKey]: the second
            page.click("div.modal-ux button.authorize >> nth=1")
            page.click("div.modal-ux button.close-modal")
            operation = page.locator("#operations-Reports-leaderboard_get")
            operation.locator(".opblock-summary").click()
            operation.locator("button.try-out__btn").click()
            operation.locator("button.execute").click()
            status = operation.locator(".live-responses-table tbody .response-col_status").first
            status.wait_for(timeout=30_000)
            status.scroll_into_view_if_needed()
            page.screenshot(path=str(SHOTS / "api-docs.png"))
            assert status.inner_text().strip() == "200"
            body = operation.locator(".live-responses-table tbody .response-col_description").first.inner_text()
            assert "swagger-visitor" in body
        finally:
            browser.close()


def test_the_not_blank_pattern_agrees_with_what_drf_trims():
    # DRF trims with str.strip(); the document's pattern must refuse exactly the blank strings it refuses
    import re

    from core.fields import NOT_BLANK_NO_NUL

    for code in range(0x3001):
        text = chr(code)
        if text != "\x00":
            assert bool(re.match(NOT_BLANK_NO_NUL, text)) == bool(text.strip()), hex(code)
    assert re.match(NOT_BLANK_NO_NUL, "\ufeff")  # not whitespace to Python, though it is to ECMA's \s


def test_a_new_rules_kind_variants_keep_their_own_kinds():
    # drf-spectacular once hoisted both branches' `kind` enums into one component holding only "engagement"
    variants = document()["components"]["schemas"]["ScoringNewRuleRequest"]["oneOf"]
    assert [v["properties"]["kind"] for v in variants] == [{"pattern": "^engagement$"}, {"pattern": "^fit$"}]
