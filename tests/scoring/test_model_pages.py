"""Dashboard pages of scoring models: the models page, and the model switcher on leads, a lead, rules, overview."""

import re

import pytest
from django.test import Client

from core.leadfacets import lead_facets
from ingest.models import Lead
from scoring.models import LeadScore, RescoreJob, ScoreHistory, ScoringModel, ScoringRule
from scoring.services.fold import primary_model
from tests.scoring.factories import scored_lead
from tests.scoring.test_pages import browser, member_of, rule_post

pytestmark = pytest.mark.django_db


def b_model(project, key="b") -> ScoringModel:
    """A non-primary model that scores demos high and page views low, with low thresholds and a cap of 40."""
    model = ScoringModel.objects.create(project=project, key=key, name=f"Model {key.upper()}", warm_threshold=5,
                                        hot_threshold=8, qualified_threshold=12, max_score=40,
                                        description="Demos first")  # fmt: skip
    ScoringRule.objects.create(project=project, model=model, name="views", event_type="page_view", points=3)
    ScoringRule.objects.create(project=project, model=model, name="demos", event_type="demo_request", points=100)
    return model


@pytest.fixture
def b(tenant):
    return b_model(tenant.project)


@pytest.fixture
def leads(tenant, b):
    """Scored after model b exists, so every model folded them: (default, b) = high (60, 36), low (50, 40),
    mid (10 cold, 6 warm)."""
    return {
        "high": scored_lead(tenant.project, "high", *["page_view"] * 12),
        "low": scored_lead(tenant.project, "low", "demo_request"),
        "mid": scored_lead(tenant.project, "mid", "page_view", "page_view"),
    }


@pytest.fixture
def theirs(other_tenant):
    return b_model(other_tenant.project, key="theirs")


def anonymous_ids(page) -> list[str]:
    return [lead.anonymous_id for lead, _ in page.context["rows"]]


# The models page


def test_models_page_lists_the_projects_models_with_rule_counts_and_thresholds(tenant, b, theirs):
    page = browser(tenant.owner).get("/models/")
    html = page.content.decode()
    assert page.status_code == 200
    assert [(m.key, m.is_primary, m.rule_count) for m in page.context["models"]] == [
        ("default", True, primary_model(tenant.project).rules.count()),
        ("b", False, 2),
    ]
    row = re.search(r'<tr data-model="b">(.*?)</tr>', html, re.S).group(1)
    assert "Model B" in row and "Demos first" in row and "2 rules" in row and "5 / 8 / 12" in row and "40" in row
    assert "data-primary" not in row
    assert "data-primary" in re.search(r'<tr data-model="default">(.*?)</tr>', html, re.S).group(1)
    assert 'action="/models/b/primary/"' in html and 'href="/models/b/delete/"' in html
    assert 'action="/models/default/primary/"' not in html  # it is the primary one already
    assert 'name="copyFrom"' in html and "theirs" not in html


def test_create_a_model_through_the_page_copying_another(tenant, b):
    client = browser(tenant.owner)
    data = {"key": "enterprise", "name": "Enterprise", "description": "Big ones", "copyFrom": "b"}
    response = client.post("/models/", data)
    assert response.status_code == 302 and response["Location"] == "/models/"
    model = ScoringModel.objects.get(project=tenant.project, key="enterprise")
    assert (model.name, model.description, model.is_primary) == ("Enterprise", "Big ones", False)
    assert sorted(model.rules.values_list("event_type", "points")) == [("demo_request", 100), ("page_view", 3)]
    assert (model.warm_threshold, model.max_score) == (5, 40)  # b's settings came along
    assert RescoreJob.objects.filter(project=tenant.project, reason__contains="enterprise").exists()
    page = client.get("/models/")
    assert "Model enterprise created" in page.content.decode() and 'data-model="enterprise"' in page.content.decode()


def test_a_model_created_from_nothing_has_no_rules_and_the_default_settings(tenant):
    assert browser(tenant.owner).post("/models/", {"key": "blank", "name": "Blank", "copyFrom": ""}).status_code == 302
    model = ScoringModel.objects.get(project=tenant.project, key="blank")
    assert model.rules.count() == 0 and model.warm_threshold == 11 and model.description == ""


@pytest.mark.parametrize(
    ("data", "status", "field", "message"),
    [
        ({"key": "b", "name": "Again"}, 409, "key", "has a model with this key already"),
        ({"key": "Not A Key", "name": "x"}, 200, "key", "Lowercase letters"),
        ({"key": "ok", "name": ""}, 200, "name", "required"),
        ({"key": "ok", "name": "x", "copyFrom": "theirs"}, 200, "copyFrom", "Select a valid choice"),
    ],
)
def test_a_bad_model_is_shown_with_its_error_and_not_created(tenant, b, theirs, data, status, field, message):
    count = ScoringModel.objects.count()
    page = browser(tenant.owner).post("/models/", data)
    assert page.status_code == status
    assert any(message in error for error in page.context["create_form"].errors[field])
    assert message in page.content.decode()
    assert ScoringModel.objects.count() == count


def test_rename_and_describe_a_model(tenant, b):
    client = browser(tenant.owner)
    form = client.get("/models/b/")
    assert form.status_code == 200 and form.context["update_form"].initial == {"name": "Model B",
                                                                              "description": "Demos first"}  # fmt: skip
    assert 'action="/models/b/"' in form.content.decode()
    assert client.post("/models/b/", {"name": "Bravo", "description": ""}).status_code == 302
    b.refresh_from_db()
    assert (b.name, b.description, b.key) == ("Bravo", "", "b")
    bad = client.post("/models/b/", {"name": ""})
    assert bad.status_code == 200 and bad.context["update_form"].errors["name"]
    b.refresh_from_db()
    assert b.name == "Bravo"


def test_make_a_model_primary_through_the_page(tenant, leads, b):
    client = browser(tenant.owner)
    response = client.post("/models/b/primary/")
    assert response.status_code == 302 and response["Location"] == "/models/"
    b.refresh_from_db()
    assert b.is_primary and not ScoringModel.objects.get(project=tenant.project, key="default").is_primary
    leads["high"].refresh_from_db()
    assert (leads["high"].current_score, leads["high"].lead_stage) == (36, "qualified")  # b's result now
    assert "Model B (b) is now the primary model." in client.get("/models/").content.decode()
    # the leads list follows the new primary by default
    assert anonymous_ids(client.get("/leads/")) == ["low", "high", "mid"]
    assert client.get("/models/b/primary/").status_code == 405


def test_delete_a_model_after_the_confirmation(tenant, leads, b):
    client = browser(tenant.owner)
    confirm = client.get("/models/b/delete/")
    html = confirm.content.decode()
    assert confirm.status_code == 200 and "Delete the model Model B" in html
    assert '<form method="post" action="/models/b/delete/">' in html and "data-refused" not in html
    assert ScoringModel.objects.filter(id=b.id).exists()  # asking deletes nothing
    response = client.post("/models/b/delete/")
    assert response.status_code == 302 and response["Location"] == "/models/"
    assert not ScoringModel.objects.filter(id=b.id).exists()
    assert not LeadScore.objects.filter(model_id=b.id).exists()
    assert not ScoringRule.objects.filter(model_id=b.id).exists()
    assert "Model b deleted." in client.get("/models/").content.decode()
    assert client.get("/models/b/delete/").status_code == 404


def test_deleting_the_primary_model_is_refused_with_a_clear_message(tenant, b):
    client = browser(tenant.owner)
    confirm = client.get("/models/default/delete/").content.decode()
    assert "make another model primary first" in confirm and "data-refused" in confirm
    assert 'action="/models/default/delete/"' not in confirm  # no button to press
    response = client.post("/models/default/delete/", follow=True)
    assert response.redirect_chain == [("/models/", 302)]
    assert "The primary model cannot be deleted: make another model primary first." in response.content.decode()
    assert ScoringModel.objects.filter(project=tenant.project, key="default", is_primary=True).exists()


def test_members_see_the_models_read_only_and_cannot_change_them(tenant, b):
    client = member_of(tenant)
    page = client.get("/models/").content.decode()
    assert 'data-model="b"' in page and "Only owners and admins change scoring models." in page
    assert 'name="copyFrom"' not in page and "/models/b/primary/" not in page and "/models/b/delete/" not in page
    assert "<button" not in client.get("/models/b/delete/").content.decode().split("</header>")[1]
    assert client.post("/models/", {"key": "mine", "name": "Mine"}).status_code == 403
    assert client.post("/models/b/", {"name": "Hijacked"}).status_code == 403
    assert client.post("/models/b/primary/").status_code == 403
    assert client.post("/models/b/delete/").status_code == 403
    b.refresh_from_db()
    assert (b.name, b.is_primary) == ("Model B", False)
    assert not ScoringModel.objects.filter(key="mine").exists()
    assert member_of(tenant, role="admin").post("/models/b/", {"name": "By an admin"}).status_code == 302


def test_another_projects_models_are_404_on_every_route(tenant, b, theirs):
    client = browser(tenant.owner)
    for key in ("theirs", "nope"):
        for url in (f"/models/{key}/", f"/models/{key}/primary/", f"/models/{key}/delete/"):
            assert client.get(url).status_code in (404, 405), url
            assert client.post(url, {"name": "Hijacked"}).status_code == 404, url
        for url in ("/", "/leads/", "/rules/"):
            assert client.get(f"{url}?model={key}").status_code == 404, url
        assert client.post(f"/rules/?model={key}", rule_post()).status_code == 404
        assert client.post(f"/rules/settings/?model={key}", {"warmThreshold": "1"}).status_code == 404
    lead = scored_lead(tenant.project, "mine", "signup")
    assert client.get(f"/leads/{lead.id}/?model=theirs").status_code == 404
    theirs.refresh_from_db()
    assert (theirs.name, theirs.is_primary) == ("Model THEIRS", False)
    assert not ScoringRule.objects.filter(model=theirs, name="Pricing").exists()


def test_model_pages_need_sign_in(tenant, b):
    for url in ("/models/", "/models/b/", "/models/b/delete/"):
        assert Client().get(url).status_code == 302
    assert Client().post("/models/b/primary/").status_code == 302
    assert ScoringModel.objects.filter(id=b.id, is_primary=False).exists()


# The model switcher: leads


def test_leads_list_sorts_filters_and_scores_by_the_chosen_model(tenant, leads, b):
    client = browser(tenant.owner)
    assert anonymous_ids(client.get("/leads/")) == ["high", "low", "mid"]
    page = client.get("/leads/?model=b")
    html = page.content.decode()
    assert page.status_code == 200 and anonymous_ids(page) == ["low", "high", "mid"]
    assert [result["score"] for _, result in page.context["rows"]] == [40, 36, 6]
    assert 'data-field="modelScore">40<' in html and 'data-field="modelStage">qualified<' in html
    assert 'data-field="currentScore"' not in html  # the live updates carry the primary model's scores
    assert anonymous_ids(client.get("/leads/?model=b&ordering=currentScore")) == ["mid", "high", "low"]
    assert anonymous_ids(client.get("/leads/?model=b&stage=warm")) == ["mid"]
    assert anonymous_ids(client.get("/leads/?stage=warm")) == []  # mid is cold under the primary model
    assert anonymous_ids(client.get("/leads/?model=default")) == ["high", "low", "mid"]


def test_the_switcher_is_kept_in_the_links_the_leads_list_makes(tenant, leads, b):
    html = browser(tenant.owner).get("/leads/?model=b&stage=qualified").content.decode()
    switcher = re.search(r'<form method="get" class="model-switcher".*?</form>', html, re.S).group(0)
    assert '<option value="b" selected>' in switcher and '<option value="default" >' in switcher
    assert "data-autosubmit" in switcher and '<input type="hidden" name="stage" value="qualified">' in switcher
    assert "?model=b&amp;stage=qualified&amp;ordering=currentScore" in html  # the sort headers
    assert f'href="/leads/{leads["low"].id}/?model=b"' in html
    assert '<input type="hidden" name="model" value="b">' in html  # the filter form
    assert "/leads/export.csv?model=b&amp;stage=qualified" in html  # the export selects the leads as the list does
    exported = browser(tenant.owner).get("/leads/export.csv?model=b&stage=qualified")
    listed = browser(tenant.owner).get("/leads/?model=b&stage=qualified").context["rows"]
    rows = b"".join(exported.streaming_content).decode().splitlines()[1:]
    assert len(rows) == len(listed) and len(listed) != len(
        browser(tenant.owner).get("/leads/?stage=qualified").context["rows"]
    )
    primary = browser(tenant.owner).get("/leads/").content.decode()
    assert f'href="/leads/{leads["low"].id}/"' in primary and 'name="model" value=' not in primary


def test_no_switcher_with_a_single_model(tenant):
    scored_lead(tenant.project, "solo", "signup")
    html = browser(tenant.owner).get("/leads/").content.decode()
    assert "model-switcher" not in html and 'data-field="currentScore">30<' in html


# A lead


def test_lead_page_shows_the_chosen_models_score_history_timeline_and_every_models_table(tenant, leads, b):
    lead = leads["low"]
    client = browser(tenant.owner)
    page = client.get(f"/leads/{lead.id}/?model=b")
    html = page.content.decode()
    assert page.status_code == 200
    assert page.context["result"] == {
        "score": 40,
        "stage": "qualified",
        "engagement": 40,
        "fit": 0,
        "grade": "C",
        "cell": "C1",
    }
    assert 'data-field="modelScore">40<' in html and 'data-field="currentScore"' not in html
    assert {row.model_id for row in page.context["history"]["points"]} == {b.id}
    assert [row.new_score for row in page.context["history"]["points"]] == [40]
    assert "Score over time (Model B)" in html
    assert [(event.name, row.delta) for event, row in page.context["timeline"]] == [("demo_request", 40)]
    table = re.search(r'<section id="model-scores">(.*?)</section>', html, re.S).group(1)
    assert [(m.key, s["score"], s["stage"]) for m, s in page.context["model_scores"]] == [
        ("default", 50, "hot"),
        ("b", 40, "qualified"),
    ]
    assert '<tr data-model="b" class="current">' in table and 'href="?model=default"' in table
    assert 'href="/leads/?model=b"' in html  # back to the leads, same model
    primary = client.get(f"/leads/{lead.id}/")
    assert primary.context["result"]["score"] == 50 and 'data-field="currentScore">50<' in primary.content.decode()
    assert [row.delta for _, row in primary.context["timeline"]] == [50]
    assert ScoreHistory.objects.filter(lead=lead).count() == 2  # one row per model


# Rules


def test_rules_page_shows_and_changes_the_chosen_models_rules_and_settings(tenant, b):
    client = browser(tenant.owner)
    page = client.get("/rules/?model=b")
    html = page.content.decode()
    assert page.status_code == 200
    assert sorted(rule.name for rule in page.context["engagement_rules"]) == ["demos", "views"]
    assert page.context["settings_form"].initial["warmThreshold"] == 5
    assert 'action="/rules/?model=b"' in html and 'action="/rules/settings/?model=b"' in html
    assert 'name="preview"' not in html  # the preview compares with the primary model only
    assert "demos" not in client.get("/rules/").content.decode()

    # a new rule goes to b, and back to b's rules
    response = client.post("/rules/?model=b", rule_post())
    assert response.status_code == 302 and response["Location"] == "/rules/?model=b"
    rule = ScoringRule.objects.get(project=tenant.project, name="Pricing")
    assert rule.model_id == b.id
    # b's settings, not the primary's
    settings = {"warmThreshold": "6", "hotThreshold": "9", "qualifiedThreshold": "20", "maxScore": "50",
                "decayRatePercent": "1", "decayGraceDays": "2"}  # fmt: skip
    assert client.post("/rules/settings/?model=b", settings)["Location"] == "/rules/?model=b"
    b.refresh_from_db()
    primary = primary_model(tenant.project)
    assert (b.warm_threshold, b.max_score, b.decay_enabled) == (6, 50, False)
    assert (primary.warm_threshold, primary.max_score, primary.decay_enabled) == (11, 10000, True)
    bad = client.post("/rules/settings/?model=b", {**settings, "hotThreshold": "5"})
    assert bad.status_code == 200 and "Thresholds must rise" in bad.content.decode()

    # edit, toggle and delete stay with the rule's own model
    edit = client.get(f"/rules/{rule.id}/")
    assert edit.context["switcher"]["choice"].model.id == b.id and 'name="preview"' not in edit.content.decode()
    assert client.post(f"/rules/{rule.id}/", rule_post(points="9"))["Location"] == "/rules/?model=b"
    assert client.post(f"/rules/{rule.id}/toggle/")["Location"] == "/rules/?model=b"
    rule.refresh_from_db()
    assert (rule.points, rule.is_active, rule.model_id) == (9, False, b.id)
    assert client.post(f"/rules/{rule.id}/delete/")["Location"] == "/rules/?model=b"
    assert not ScoringRule.objects.filter(id=rule.id).exists()
    primary_rule = primary.rules.first()
    assert client.post(f"/rules/{primary_rule.id}/toggle/")["Location"] == "/rules/"


def test_a_preview_of_another_models_rule_is_refused_and_saves_nothing(tenant, b):
    page = browser(tenant.owner).post("/rules/?model=b", rule_post(preview="1"))
    assert page.status_code == 200 and page.context["preview"] is None
    assert "The preview covers the primary model only" in page.content.decode()
    assert not ScoringRule.objects.filter(name="Pricing").exists()


def test_members_cannot_change_another_models_rules_or_settings(tenant, b):
    client = member_of(tenant)
    rule = b.rules.first()
    assert client.get("/rules/?model=b").status_code == 200
    assert client.post("/rules/?model=b", rule_post()).status_code == 403
    assert client.post("/rules/settings/?model=b", {"warmThreshold": "1"}).status_code == 403
    assert client.post(f"/rules/{rule.id}/toggle/").status_code == 403
    assert b.rules.filter(is_active=True).count() == 2 and not ScoringRule.objects.filter(name="Pricing").exists()


# Overview


def test_overview_counts_stages_and_ranks_top_leads_by_the_chosen_model(tenant, leads, b):
    client = browser(tenant.owner)
    primary = client.get("/")
    assert primary.context["data"]["stageDistribution"] == {"cold": 1, "warm": 0, "hot": 1, "qualified": 1}
    assert [lead.anonymous_id for lead, _, _ in primary.context["top"]] == ["high", "low", "mid"]
    page = client.get("/?model=b")
    html = page.content.decode()
    assert page.status_code == 200
    assert page.context["data"]["stageDistribution"] == {"cold": 0, "warm": 1, "hot": 0, "qualified": 2}
    assert page.context["data"]["qualifiedLeads"] == 2 and 'data-kpi="qualifiedLeads">2<' in html
    assert [(lead.anonymous_id, score, stage) for lead, score, stage in page.context["top"]] == [
        ("low", 40, "qualified"),
        ("high", 36, "qualified"),
        ("mid", 6, "warm"),
    ]
    assert f'href="/leads/{leads["low"].id}/?model=b"' in html and '<option value="b" selected>' in html


# Query budgets: a page of rows costs what one row does


def test_model_pages_keep_a_fixed_query_budget(tenant, b, django_assert_max_num_queries):
    lead = scored_lead(tenant.project, "first", "signup", "demo_request")
    client = browser(tenant.owner)
    urls = ("/models/", "/leads/?model=b", f"/leads/{lead.id}/?model=b", "/rules/?model=b", "/?model=b")
    budgets = {}
    for url in urls:
        client.get(url)
        with django_assert_max_num_queries(30 + len(list(lead_facets))) as captured:  # a query per lead facet
            client.get(url)
        budgets[url] = len(captured.captured_queries)
    for i in range(30):
        scored_lead(tenant.project, f"more-{i}", "page_view", "signup", "page_view")
    for i in range(4):
        b_model(tenant.project, key=f"extra-{i}")
    ScoringRule.objects.create(project=tenant.project, model=b, name="extra", event_type="signup", points=1)
    assert Lead.objects.filter(project=tenant.project).count() == 31
    for url, budget in budgets.items():
        with django_assert_max_num_queries(budget):
            assert client.get(url).status_code == 200, url
