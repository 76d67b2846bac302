"""The fit x engagement matrix in a real browser, on the production topology (uvicorn on the test PostgreSQL,
Celery workers, Redis): the overview's heat map of lead counts, a click on a cell landing on the leads list
filtered to exactly that cell's leads, the matrix filter and sort there, and the same under another model.
Screenshots go to test-artifacts/pages/."""

import base64
import json
import threading

import pytest
from django.db import connection
from django.test import Client
from playwright.sync_api import expect

from ingest.models import Lead
from scoring.models import ScoringModel, ScoringRule
from scoring.services.fold import primary_model
from tests.accounts.factories import project_with_owner
from tests.leadpulse.test_dashboard_browser import SHOTS, settled, signed_in
from tests.leadpulse.test_models_browser import names_in_order
from tests.live import wait_until

pytestmark = pytest.mark.live

# anonymous id -> (traits, events): under the primary model (warm 11, hot 31; fit: tier a +30, tier d -20)
# and model "b" (warm 5, hot 8; page views 3, demos 100; no fit rules, so every lead is grade C)
LEADS = {
    "ada": ({"tier": "a"}, ["demo_request"]),  # A1 (engagement 50) | b: C1
    "amy": ({"tier": "a"}, ["signup", "page_view"]),  # A1 (35) | b: C3 (3)
    "alan": ({"tier": "a"}, ["page_view"]),  # A3 (5) | b: C3
    "bea": ({}, ["demo_request"]),  # C1 | b: C1
    "cy": ({}, ["form_submit"]),  # C2 (20) | b: C3 (0)
    "dee": ({"tier": "d"}, ["demo_request"]),  # D1 | b: C1
}


@pytest.fixture
def web(live_pipeline, live_web):
    """`uvicorn leadpulse.asgi:application`, the Procfile's web process, on the test database (the session's)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    return live_web


def segment_batch(key: str, leads: dict) -> None:
    """Each lead's traits (an identify call) and events, as one Segment batch."""
    batch = []
    for anonymous_id, (traits, events) in leads.items():
        if traits:
            batch.append({"type": "identify", "anonymousId": anonymous_id, "traits": traits,
                          "messageId": f"{anonymous_id}-identify"})  # fmt: skip
        batch += [{"type": "track", "event": name, "anonymousId": anonymous_id, "messageId": f"{anonymous_id}-{i}"}
                  for i, name in enumerate(events)]  # fmt: skip
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    try:
        response = Client().post("/v1/batch", json.dumps({"batch": batch}), content_type="application/json",
                                 HTTP_AUTHORIZATION=auth)  # fmt: skip
        assert response.status_code == 200, response.content
    finally:
        connection.close()


def setup_project(name: str):
    project, owner, key = project_with_owner(name=name)
    primary = primary_model(project)
    for tier, points in (("a", 30), ("d", -20)):
        ScoringRule.objects.create(project=project, model=primary, kind="fit", name=f"tier {tier}", points=points,
                                   conditions=[{"path": "traits.tier", "op": "eq", "value": tier}])  # fmt: skip
    b = ScoringModel.objects.create(project=project, key="b", name="Model B", warm_threshold=5, hot_threshold=8,
                                    qualified_threshold=12, max_score=40)  # fmt: skip
    ScoringRule.objects.create(project=project, model=b, name="views", event_type="page_view", points=3)
    ScoringRule.objects.create(project=project, model=b, name="demos", event_type="demo_request", points=100)
    return project, owner, key


def heat(page) -> dict[str, int]:
    cells = page.locator("#matrix a[data-cell]")
    return {
        cells.nth(i).get_attribute("data-cell"): int(cells.nth(i).locator(".heat-count").inner_text())
        for i in range(cells.count())
    }


def matrix_cells(page) -> list[str]:
    return page.locator('#leads [data-field="matrixCell"]').all_inner_texts()


def test_click_a_heat_map_cell_and_land_on_exactly_its_leads(web):
    project, owner, key = setup_project("Matrix Co")
    other, _, other_key = setup_project("Secret Other Co")
    segment_batch(key, LEADS)
    segment_batch(other_key, {"their-lead": ({"tier": "a"}, ["demo_request"])})  # A1 there, never here
    wait_until(lambda: settled(project) and settled(other), timeout=60, message="scoring")
    cells = dict(Lead.objects.filter(project=project).values_list("anonymous_id", "fit_grade"))
    assert cells == {"ada": "A", "amy": "A", "alan": "A", "bea": "C", "cy": "C", "dee": "D"}

    with signed_in(web, owner.email, height=1000) as (page, errors, console):
        # the overview: a 4 x 3 heat map of counts, the fullest cell darkest, empty ones blank
        assert page.locator("#matrix tbody tr").count() == 4
        counts = heat(page)
        assert {cell: n for cell, n in counts.items() if n} == {"A1": 2, "A3": 1, "C1": 1, "C2": 1, "D1": 1}
        assert len(counts) == 12
        assert "heat-5" in page.locator("#matrix td:has(a[data-cell=A1])").get_attribute("class")
        assert "heat-0" in page.locator("#matrix td:has(a[data-cell=B2])").get_attribute("class")
        a1 = page.eval_on_selector("#matrix td:has(a[data-cell=A1])", "e => getComputedStyle(e).backgroundColor")
        b2 = page.eval_on_selector("#matrix td:has(a[data-cell=B2])", "e => getComputedStyle(e).backgroundColor")
        assert a1 != b2  # the stylesheet's colours apply (no inline style: CSP)
        page.locator("#matrix").scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "overview-matrix.png"), full_page=True)

        # the page left open: a new A1 lead scored by the workers shows up in the counts, with no reload
        url = page.url
        # (Django's sync ORM refuses to run in the thread that drives the browser's event loop)
        sender = threading.Thread(target=segment_batch, args=(key, {"abe": ({"tier": "a"}, ["demo_request"])}))
        sender.start()
        sender.join()
        expect(page.locator("#matrix a[data-cell=A1] .heat-count")).to_have_text("3", timeout=30000)
        assert heat(page)["A1"] == 3 and page.url == url
        assert page.locator('[data-kpi="totalLeads"]').inner_text() == "7"
        assert "abe" in page.locator("#top-leads").inner_text()

        # a click on A1: the leads list filtered to it, exactly ada and amy (highest score first)
        page.locator("#matrix a[data-cell=A1]").click()
        page.wait_for_url(f"{web}/leads/?matrix=A1")
        assert names_in_order(page) == ["abe", "ada", "amy"] and matrix_cells(page) == ["A1"] * 3  # ties: newest first
        assert page.locator("#matrix-filter").input_value() == "A1"
        page.screenshot(path=str(SHOTS / "leads-matrix-a1.png"), full_page=True)

        # the filter's select: another cell
        page.select_option("#matrix-filter", "C2")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url(lambda url: "matrix=C2" in url)
        assert names_in_order(page) == ["cy"]

        # every lead, sorted by the Matrix column: A1 first, then the other way
        page.goto(f"{web}/leads/")
        page.locator("#leads thead").get_by_role("link", name="Matrix").click()
        page.wait_for_url(f"{web}/leads/?ordering=matrix")
        assert matrix_cells(page) == ["A1", "A1", "A1", "A3", "C1", "C2", "D1"]
        page.locator("#leads thead").get_by_role("link", name="Matrix").click()
        page.wait_for_url(f"{web}/leads/?ordering=-matrix")
        assert matrix_cells(page) == ["D1", "C2", "C1", "A3", "A1", "A1", "A1"]
        page.screenshot(path=str(SHOTS / "leads-matrix-sorted.png"), full_page=True)

        # under model b (the switcher on the overview): its own cells, and links that keep the model
        page.goto(f"{web}/")
        page.select_option("#model-select", "b")
        page.wait_for_url(f"{web}/?model=b")
        assert {cell: n for cell, n in heat(page).items() if n} == {"C1": 4, "C3": 3}
        page.screenshot(path=str(SHOTS / "overview-matrix-model-b.png"), full_page=True)
        page.locator("#matrix a[data-cell=C1]").click()
        page.wait_for_url(f"{web}/leads/?matrix=C1&model=b")
        assert sorted(names_in_order(page)) == ["abe", "ada", "bea", "dee"] and matrix_cells(page) == ["C1"] * 4
        page.screenshot(path=str(SHOTS / "leads-matrix-model-b.png"), full_page=True)

        assert "their-lead" not in page.content() and "Secret Other Co" not in page.content()
        assert errors == [] and console == []
