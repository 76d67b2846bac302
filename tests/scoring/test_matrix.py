"""The fit x engagement matrix through the API and the pages: each lead's cell under every model, the
`matrix` filter and sort of the lead list, the cell counts, and the overview's heat map."""

import csv
import io
import re
from collections import Counter

import pytest
from django.utils import timezone

from ingest.lead_tallies import lead_tallies_drift
from ingest.models import Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from scoring import engine
from scoring.models import LeadScore, ScoringModel, ScoringRule
from scoring.services import lead_score
from scoring.services.fold import model_policy, primary_model
from tests.scoring.factories import scored_lead
from tests.scoring.test_models import run_jobs
from tests.scoring.test_pages import browser

pytestmark = pytest.mark.django_db

# (anonymous id, fit tier trait, events) -> cell under the primary model (warm 11, hot 31) and under model b
# (warm 5, hot 8, page views 3, demos 100, no fit rules: every lead grade C)
LEADS = {
    "a1-top": ("a", ["demo_request"]),  # engagement 50, fit 30: A1 (score 80) | b: 40, C1
    "a1-low": ("a", ["signup", "page_view"]),  # 35: A1 (score 65) | b: 3, C3
    "a2": ("a", ["form_submit"]),  # 20: A2 | b: 0, C3
    "b1": ("b", ["demo_request"]),  # 50, fit 15: B1 | b: C1
    "b3": ("b", ["page_view"]),  # 5: B3 | b: C3
    "c2": ("", ["email_open", "page_view"]),  # 15: C2 | b: C3
    "c3": ("", ["page_view", "page_view"]),  # 10: C3 | b: 6, C2
    "d3": ("d", ["page_view"]),  # 5, fit -20: D3 (score 0) | b: C3
}
PRIMARY_CELLS = {"a1-top": "A1", "a1-low": "A1", "a2": "A2", "b1": "B1", "b3": "B3", "c2": "C2", "c3": "C3",
                 "d3": "D3"}  # fmt: skip
B_CELLS = {"a1-top": "C1", "a1-low": "C3", "a2": "C3", "b1": "C1", "b3": "C3", "c2": "C3", "c3": "C2", "d3": "C3"}


def model_b(project, key="b") -> ScoringModel:
    model = ScoringModel.objects.create(project=project, key=key, name=f"Model {key}", warm_threshold=5,
                                        hot_threshold=8, qualified_threshold=12, max_score=40)  # fmt: skip
    ScoringRule.objects.create(project=project, model=model, name="views", event_type="page_view", points=3)
    ScoringRule.objects.create(project=project, model=model, name="demos", event_type="demo_request", points=100)
    return model


def fit_rules(project) -> None:
    primary = primary_model(project)
    for tier, points in (("a", 30), ("b", 15), ("d", -20)):
        ScoringRule.objects.create(project=project, model=primary, kind="fit", name=f"tier {tier}", points=points,
                                   conditions=[{"path": "traits.tier", "op": "eq", "value": tier}])  # fmt: skip


@pytest.fixture
def leads(tenant) -> dict[str, Lead]:
    """The LEADS, scored by the real service under the primary model (with fit rules) and model b."""
    fit_rules(tenant.project)
    model_b(tenant.project)
    return {
        anonymous_id: scored_lead(tenant.project, anonymous_id, *events, traits={"tier": tier} if tier else {})
        for anonymous_id, (tier, events) in LEADS.items()
    }


def listed(client, query: str = "") -> list[dict]:
    response = client.get(f"/api/leads?pageSize=100{query}")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def ids(results) -> list[str]:
    return [lead["anonymousId"] for lead in results]


def grouped(project, model: ScoringModel) -> dict[str, int]:
    """The cell counts computed apart from the selectors: the stored results of every live lead, through the
    pure cell function (a lead model b has no row for yet is C3, as its unfolded result)."""
    policy = model_policy(model)
    live = Lead.objects.filter(project=project, merged_into__isnull=True)
    if model.is_primary:
        cells = Counter(engine.matrix_cell(g, e, policy) for g, e in live.values_list("fit_grade", "engagement_score"))
    else:
        rows = dict(LeadScore.objects.filter(model=model).values_list("lead_id", "grade"))
        engagement = dict(LeadScore.objects.filter(model=model).values_list("lead_id", "engagement"))
        cells = Counter(
            engine.matrix_cell(rows.get(lead_id, "C"), engagement.get(lead_id, 0), policy)
            for lead_id in live.values_list("id", flat=True)
        )
    return {cell: cells.get(cell, 0) for cell in engine.MATRIX_CELLS}


# The API


def test_each_lead_carries_its_primary_cell_and_every_models_cell(tenant, leads):
    results = {lead["anonymousId"]: lead for lead in listed(tenant.client)}
    assert {key: lead["matrixCell"] for key, lead in results.items()} == PRIMARY_CELLS
    assert {key: lead["scores"]["default"]["cell"] for key, lead in results.items()} == PRIMARY_CELLS
    assert {key: lead["scores"]["b"]["cell"] for key, lead in results.items()} == B_CELLS
    detail = tenant.client.get(f"/api/leads/{leads['a1-top'].id}").json()
    assert detail["matrixCell"] == "A1" and detail["fitGrade"] == "A" and detail["engagementScore"] == 50
    assert detail["scores"]["b"] == {"score": 40, "stage": "qualified", "engagement": 40, "fit": 0, "grade": "C",
                                     "cell": "C1"}  # fmt: skip


def test_the_matrix_filter_lists_exactly_the_leads_in_those_cells_of_the_model(tenant, leads):
    assert sorted(ids(listed(tenant.client, "&matrix=A1,B1"))) == ["a1-low", "a1-top", "b1"]
    assert ids(listed(tenant.client, "&matrix=a2")) == ["a2"]  # either case
    assert ids(listed(tenant.client, "&matrix=D1")) == []
    assert ids(listed(tenant.client, "&matrix=")) == ids(listed(tenant.client))  # empty: no filter
    # the cells of ?model=, by its thresholds and grades
    assert sorted(ids(listed(tenant.client, "&model=b&matrix=C1"))) == ["a1-top", "b1"]
    assert ids(listed(tenant.client, "&model=b&matrix=C2")) == ["c3"]
    assert ids(listed(tenant.client, "&model=b&matrix=A1")) == []
    # with the other filters
    assert ids(listed(tenant.client, "&matrix=A1,A2&stage=hot")) == ["a2"]  # 20 + fit 30
    for cell in engine.MATRIX_CELLS:
        for key, cells in (("default", PRIMARY_CELLS), ("b", B_CELLS)):
            expected = sorted(name for name, c in cells.items() if c == cell)
            assert sorted(ids(listed(tenant.client, f"&model={key}&matrix={cell}"))) == expected, (key, cell)


def test_ordering_by_matrix_puts_a1_first_ties_by_score_and_minus_matrix_reverses_it(tenant, leads):
    by_matrix = listed(tenant.client, "&ordering=matrix")
    assert ids(by_matrix) == ["a1-top", "a1-low", "a2", "b1", "b3", "c2", "c3", "d3"]
    assert ids(listed(tenant.client, "&ordering=-matrix")) == list(reversed(ids(by_matrix)))
    under_b = listed(tenant.client, "&model=b&ordering=matrix")
    key = [(lead["scores"]["b"]["cell"], -lead["scores"]["b"]["score"], -lead["id"]) for lead in under_b]
    assert key == sorted(key) and [cell for cell, _, _ in key][:3] == ["C1", "C1", "C2"]
    assert ids(listed(tenant.client, "&model=b&ordering=-matrix")) == list(reversed(ids(under_b)))
    # paging through the sort walks every lead once
    pages = [tenant.client.get(f"/api/leads?ordering=matrix&pageSize=3&page={n}").json() for n in (1, 2, 3)]
    assert [lead["anonymousId"] for page in pages for lead in page["results"]] == ids(by_matrix)


@pytest.mark.parametrize("value", ["E1", "A4", "A1,", "A1 ,B1", "A1;B1", "AA", "1A", "A1,B1,X9"])
def test_a_bad_matrix_filter_is_a_400_naming_matrix(tenant, leads, value):
    response = tenant.client.get("/api/leads", {"matrix": value})
    assert response.status_code == 400
    assert response.json()["error"]["fields"].keys() == {"matrix"}
    assert tenant.client.get("/api/leads/export", {"matrix": value}).status_code == 400


def test_a_bad_ordering_names_the_matrix_among_the_choices(tenant):
    response = tenant.client.get("/api/leads?ordering=matrixx")
    assert response.status_code == 400 and "matrix" in response.json()["error"]["fields"]["ordering"][0]


def test_matrix_counts_equal_a_count_over_the_scored_leads_under_each_model(tenant, leads):
    response = tenant.client.get("/api/analytics/matrix")
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "default" and (body["warmThreshold"], body["hotThreshold"]) == (11, 31)
    assert body["cells"] == grouped(tenant.project, primary_model(tenant.project))
    assert {cell: n for cell, n in body["cells"].items() if n} == dict(Counter(PRIMARY_CELLS.values()))
    assert list(body["cells"]) == list(engine.MATRIX_CELLS) and body["total"] == len(LEADS)
    under_b = tenant.client.get("/api/analytics/matrix?model=b").json()
    assert under_b["cells"] == grouped(tenant.project, ScoringModel.objects.get(project=tenant.project, key="b"))
    assert {cell: n for cell, n in under_b["cells"].items() if n} == {"C1": 2, "C2": 1, "C3": 5}
    assert (under_b["model"], under_b["total"]) == ("b", len(LEADS))


def test_counts_and_the_list_agree_after_more_scoring_and_an_erasure(tenant, leads):
    demo = CanonicalEvent(event_id="a2-demo", name="demo_request", anonymous_id="a2", timestamp=timezone.now())
    events_ingest(project_id=tenant.project.id, events=[demo])
    lead_score(lead_id=leads["a2"].id)  # engagement 20 + 50 = 70: A2 -> A1
    assert tenant.client.delete(f"/api/leads/{leads['d3'].id}").status_code == 204  # no longer a live lead
    counts = tenant.client.get("/api/analytics/matrix").json()["cells"]
    assert counts == grouped(tenant.project, primary_model(tenant.project))
    assert (counts["A1"], counts["A2"], counts["D3"]) == (3, 0, 0)
    for cell, n in counts.items():
        assert tenant.client.get(f"/api/leads?matrix={cell}").json()["count"] == n


def test_a_model_without_leads_has_every_cell_at_zero(tenant):
    body = tenant.client.get("/api/analytics/matrix").json()
    assert body["cells"] == dict.fromkeys(engine.MATRIX_CELLS, 0) and body["total"] == 0


def test_another_projects_matrix_is_not_reachable(tenant, other_tenant, leads):
    model_b(other_tenant.project, key="theirs")
    scored_lead(other_tenant.project, "their-lead", "demo_request")
    assert tenant.client.get("/api/analytics/matrix?model=theirs").status_code == 404
    assert tenant.client.get("/api/leads?model=theirs&matrix=C1").status_code == 404
    header = {"HTTP_X_LEADPULSE_PROJECT": str(other_tenant.project.id)}
    assert tenant.client.get("/api/analytics/matrix", **header).status_code == 404
    theirs = other_tenant.client.get("/api/analytics/matrix").json()
    assert theirs["total"] == 1 and theirs["cells"]["C1"] == 1
    assert ids(listed(other_tenant.client, "&matrix=A1,B1,C1")) == ["their-lead"]


def test_the_matrix_operations_are_in_the_openapi_document(tenant):
    schema = tenant.client.get("/api/schema/?format=json").json()
    matrix = schema["paths"]["/api/analytics/matrix"]["get"]
    assert matrix["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/ReportMatrix")
    parameters = {p["name"]: p for p in schema["paths"]["/api/leads"]["get"]["parameters"]}
    assert re.fullmatch(parameters["matrix"]["schema"]["pattern"], "A1,b3")
    assert {"matrix", "-matrix"} <= set(parameters["ordering"]["schema"]["enum"])
    lead = schema["components"]["schemas"]["Lead"]["properties"]
    (cell_enum,) = lead["matrixCell"]["allOf"]
    assert schema["components"]["schemas"][cell_enum["$ref"].rsplit("/", 1)[1]]["enum"] == list(engine.MATRIX_CELLS)


# The pages


def test_leads_page_shows_the_matrix_column_filters_and_sorts_by_cell(tenant, leads):
    client = browser(tenant.owner)
    page = client.get("/leads/?matrix=A1,B1&ordering=matrix")
    assert page.status_code == 200
    assert [(lead.anonymous_id, result["cell"]) for lead, result in page.context["rows"]] == [
        ("a1-top", "A1"), ("a1-low", "A1"), ("b1", "B1"),
    ]  # fmt: skip
    html = page.content.decode()
    assert html.count('data-field="matrixCell"') == 3 and ">Matrix</a>" in html
    assert '<option value="A1,B1" selected>' in html  # the filter in force, though the select lists single cells
    assert "?matrix=A1%2CB1&amp;ordering=-matrix" in html  # the header sorts the other way next
    under_b = client.get("/leads/?model=b&matrix=C2")
    assert [(lead.anonymous_id, result["cell"]) for lead, result in under_b.context["rows"]] == [("c3", "C2")]
    bad = client.get("/leads/?matrix=Z9")
    assert bad.status_code == 200 and "matrix: Must be comma-separated matrix cells" in bad.content.decode()
    assert len(bad.context["rows"]) == len(LEADS)  # reported and ignored


def heat_map(html: str) -> dict[str, tuple[str, int]]:
    """The overview's heat map: cell -> (link, count)."""
    table = re.search(r'<table class="heat-map".*?</table>', html, re.S).group(0)
    return {
        cell: (href.replace("&amp;", "&"), int(count))
        for href, cell, count in re.findall(
            r'<a href="([^"]+)" data-cell="(\w\d)"[^>]*>.*?<span class="heat-count">(\d+)</span>', table, re.S
        )
    }


def test_overview_shows_the_matrix_heat_map_linking_each_cell_to_its_leads(tenant, leads):
    client = browser(tenant.owner)
    html = client.get("/").content.decode()
    cells = heat_map(html)
    expected = grouped(tenant.project, primary_model(tenant.project))
    assert {cell: count for cell, (_, count) in cells.items()} == expected
    assert cells["A1"][0] == "/leads/?matrix=A1"
    # the colour follows the count: the largest cell darkest, empty cells blank; no inline style (CSP)
    assert re.search(r'class="heat heat-5"><a href="/leads/\?matrix=A1"', html)
    assert re.search(r'class="heat heat-0"><a href="/leads/\?matrix=D1"', html)
    assert 'style="' not in re.search(r'<table class="heat-map".*?</table>', html, re.S).group(0)
    # each link lists exactly the cell's leads
    for cell, (href, count) in cells.items():
        assert len(client.get(href).context["rows"]) == count, cell
    # the model switcher: model b's cells, links that keep the model
    under_b = heat_map(client.get("/?model=b").content.decode())
    assert {cell: n for cell, (_, n) in under_b.items() if n} == {"C1": 2, "C2": 1, "C3": 5}
    assert under_b["C1"][0] == "/leads/?matrix=C1&model=b"
    rows = client.get(under_b["C1"][0]).context["rows"]
    assert sorted(lead.anonymous_id for lead, _ in rows) == ["a1-top", "b1"]


def test_the_stored_cell_is_the_pure_function_of_the_stored_results_and_the_tallies_count_it(tenant, leads):
    """The primary's cell is stored with its score (a cache of the fold, like the stage), and tallied."""
    policy = model_policy(primary_model(tenant.project))
    for lead in Lead.objects.filter(project=tenant.project):
        assert lead.matrix_cell == engine.matrix_cell(lead.fit_grade, lead.engagement_score, policy), lead
    assert lead_tallies_drift(project_id=tenant.project.id) == {}


def test_another_models_sql_cells_agree_with_the_pure_function_at_every_threshold(tenant, leads):
    """Model b's results set to each side of its thresholds (warm 5, hot 8): the filter, sort and counts (SQL)
    and the lead's `scores.b.cell` (engine.matrix_cell) put every lead in the same cell."""
    b = ScoringModel.objects.get(project=tenant.project, key="b")
    values = {"a1-top": ("A", 9), "a1-low": ("A", 8), "a2": ("B", 7), "b1": ("B", 5), "b3": ("D", 4),
              "c2": ("C", 0), "c3": ("C", 8), "d3": ("D", 5)}  # fmt: skip
    for name, (grade, engagement) in values.items():
        LeadScore.objects.filter(lead=leads[name], model=b).update(grade=grade, engagement=engagement)
    results = listed(tenant.client, "&model=b")
    cells = {lead["anonymousId"]: lead["scores"]["b"]["cell"] for lead in results}
    assert cells == {"a1-top": "A1", "a1-low": "A1", "a2": "B2", "b1": "B2", "b3": "D3", "c2": "C3", "c3": "C1",
                     "d3": "D2"}  # fmt: skip
    counts = tenant.client.get("/api/analytics/matrix?model=b").json()["cells"]
    assert counts == {cell: list(cells.values()).count(cell) for cell in engine.MATRIX_CELLS}
    for cell in engine.MATRIX_CELLS:
        expected = sorted(name for name, c in cells.items() if c == cell)
        assert sorted(ids(listed(tenant.client, f"&model=b&matrix={cell}"))) == expected, cell
    in_order = [cells[name] for name in ids(listed(tenant.client, "&model=b&ordering=matrix"))]
    assert in_order == sorted(in_order)


def test_new_thresholds_move_the_cells_with_the_rescore_and_a_new_primary_brings_its_own(tenant, leads):
    # a higher hot threshold for the primary: a1-low (engagement 35) leaves A1 once the re-score has run
    response = tenant.client.patch("/api/scoring/settings", {"hotThreshold": 40}, format="json")
    assert response.status_code == 200, response.content
    run_jobs(tenant.project)
    counts = tenant.client.get("/api/analytics/matrix").json()
    assert counts["hotThreshold"] == 40 and counts["cells"] == grouped(tenant.project, primary_model(tenant.project))
    assert ids(listed(tenant.client, "&matrix=A1")) == ["a1-top"] and ids(listed(tenant.client, "&matrix=A2")) == [
        "a1-low",
        "a2",
    ]
    assert lead_tallies_drift(project_id=tenant.project.id) == {}

    # model b made primary: its cells become the leads' own, tallied
    before = tenant.client.get("/api/analytics/matrix?model=b").json()["cells"]
    assert tenant.client.post("/api/models/b/primary").status_code == 200
    after = tenant.client.get("/api/analytics/matrix").json()
    assert after["model"] == "b" and after["cells"] == before == grouped(tenant.project, primary_model(tenant.project))
    assert {lead["anonymousId"]: lead["matrixCell"] for lead in listed(tenant.client)} == B_CELLS
    assert lead_tallies_drift(project_id=tenant.project.id) == {}


def test_the_lead_page_shows_the_leads_cell_under_the_model_shown(tenant, leads):
    client = browser(tenant.owner)
    lead = leads["c3"]
    for query, cell in (("", "C3"), ("?model=b", "C2")):
        html = client.get(f"/leads/{lead.id}/{query}").content.decode()
        shown = re.search(r'<div class="value" data-field="matrixCell">(\w\d)</div>', html)
        assert shown and shown.group(1) == cell, query


# Adjustments move the cells


def test_an_adjustment_moves_the_stored_cell_the_tallies_and_the_counts_under_its_model(tenant, leads):
    lead = leads["a2"]  # engagement 20, fit 30: A2 (warm 11, hot 31) | b: C3
    # when the primary model's engagement is raised past hot
    response = tenant.client.post(f"/api/leads/{lead.id}/adjustments", {"points": 20, "reason": "met at a fair"},
                                  format="json")  # fmt: skip
    # then the answer, the stored cell, the tallies and the counts all say A1
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["lead"]["matrixCell"] == "A1" and body["lead"]["scores"]["default"]["cell"] == "A1"
    assert Lead.objects.get(pk=lead.pk).matrix_cell == "A1"
    assert lead_tallies_drift(project_id=tenant.project.id) == {}
    cells = tenant.client.get("/api/analytics/matrix").json()["cells"]
    assert (cells["A1"], cells["A2"]) == (3, 0)
    assert "a2" in ids(listed(tenant.client, "&matrix=A1"))

    # when model b (not primary) is set to 10 (past its hot threshold 8)
    body = tenant.client.post(f"/api/leads/{lead.id}/adjustments", {"setTo": 10, "reason": "sales call", "model": "b"},
                              format="json").json()  # fmt: skip
    # then its cell moves under b, and the primary's stored cell and tallies do not
    assert body["lead"]["scores"]["b"]["cell"] == "C1" and body["lead"]["matrixCell"] == "A1"
    assert Lead.objects.get(pk=lead.pk).matrix_cell == "A1"
    assert lead_tallies_drift(project_id=tenant.project.id) == {}
    under_b = tenant.client.get("/api/analytics/matrix?model=b").json()["cells"]
    assert under_b == grouped(tenant.project, ScoringModel.objects.get(project=tenant.project, key="b"))
    assert under_b["C1"] == 3
    assert "a2" in ids(listed(tenant.client, "&matrix=C1&model=b"))

    # when reset to 0 under the primary: A3, everywhere
    tenant.client.post(f"/api/leads/{lead.id}/adjustments", {"setTo": 0, "reason": "student"}, format="json")
    assert Lead.objects.get(pk=lead.pk).matrix_cell == "A3"
    assert lead_tallies_drift(project_id=tenant.project.id) == {}
    assert tenant.client.get("/api/analytics/matrix").json()["cells"] == grouped(
        tenant.project, primary_model(tenant.project)
    )


def exported_ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    column = rows[0].index("anonymousId")
    return sorted(row[column] for row in rows[1:])


def test_the_csv_exports_the_cells_of_the_model_asked_for(tenant, leads):
    """`GET /api/leads/export?matrix=C1&model=b`: the leads the list shows (C1 under b), not the primary's C1."""
    listed_ids = sorted(ids(listed(tenant.client, "&matrix=C1&model=b")))
    assert listed_ids == ["a1-top", "b1"]
    # the API's export takes the documented ?model=
    assert exported_ids(tenant.client.get("/api/leads/export?matrix=C1&model=b")) == listed_ids
    assert exported_ids(tenant.client.get("/api/leads/export?matrix=C1")) == []  # none is C1 under the primary
    assert tenant.client.get("/api/leads/export?model=nope").status_code == 404
