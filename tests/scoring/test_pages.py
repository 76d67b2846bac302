"""Dashboard pages of scoring: leads (with CSV export), a lead, rules."""

import csv
import io
import json

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Membership
from ingest.models import Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from scoring.models import RescoreJob, ScoreHistory, ScoringRule
from scoring.services import lead_merge
from scoring.services.fold import primary_model
from tests.accounts.factories import UserFactory
from tests.scoring.factories import scored_lead

pytestmark = pytest.mark.django_db


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.fixture
def leads(tenant):
    return {
        "cold": scored_lead(tenant.project, "cold-1", "page_view", email="cold@example.com"),
        "warm": scored_lead(tenant.project, "warm-1", "signup", name="Wanda Warm"),
        "hot": scored_lead(tenant.project, "hot-1", "demo_request", company="Hotco"),
        "qualified": scored_lead(tenant.project, "q-1", "demo_request", "signup"),
    }


@pytest.fixture
def theirs(other_tenant):
    return scored_lead(other_tenant.project, "secret-lead", "demo_request", email="secret@b.example")


def member_of(tenant, role="member"):
    user = UserFactory()
    Membership.objects.create(user=user, project=tenant.project, role=role)
    return browser(user)


def rule_post(**overrides):
    data = {"name": "Pricing", "kind": "engagement", "eventType": "page_view", "points": "7",
            "conditions": json.dumps([{"path": "properties.url", "op": "contains", "value": "/pricing"}]),
            "maxPerDay": "", "maxPerLead": "3", "maxPoints": "", "isActive": "on"}  # fmt: skip
    return {**data, **overrides}


# Leads


def test_leads_page_lists_the_projects_leads_with_live_hooks(tenant, leads, theirs):
    page = browser(tenant.owner).get("/leads/")
    html = page.content.decode()
    assert page.status_code == 200
    assert [lead.anonymous_id for lead in page.context["page"].object_list] == ["q-1", "hot-1", "warm-1", "cold-1"]
    assert f'data-lead-id="{leads["hot"].id}"' in html
    assert 'data-field="currentScore">80<' in html and 'data-field="leadStage">qualified<' in html
    assert "js/leads.js" in html and "/leads/export.csv" in html
    assert "secret" not in html and f'data-lead-id="{theirs.id}"' not in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("stage=warm", ["warm-1"]),
        ("search=cold@exa", ["cold-1"]),
        ("search=wanda", ["warm-1"]),
        ("search=hotco", ["hot-1"]),
        ("ordering=currentScore", ["cold-1", "warm-1", "hot-1", "q-1"]),
        ("ordering=name&stage=", ["cold-1", "hot-1", "q-1", "warm-1"]),
    ],
)
def test_leads_page_filters_and_sorts(tenant, leads, query, expected):
    page = browser(tenant.owner).get(f"/leads/?{query}")
    assert [lead.anonymous_id for lead in page.context["page"].object_list] == expected


@pytest.mark.parametrize(("query", "field"), [("stage=boiling", "stage"), ("ordering=password", "ordering")])
def test_leads_page_reports_and_ignores_bad_filters(tenant, leads, query, field):
    page = browser(tenant.owner).get(f"/leads/?{query}")
    assert page.status_code == 200
    assert field in page.context["form"].errors and "(ignored)" in page.content.decode()
    assert len(page.context["page"].object_list) == 4


def test_sort_headers_toggle_direction_and_keep_the_filters(tenant, leads):
    html = browser(tenant.owner).get("/leads/?stage=warm&ordering=-currentScore").content.decode()
    assert "?stage=warm&amp;ordering=currentScore" in html  # the current column flips
    assert "?stage=warm&amp;ordering=-lastEventAt" in html


def test_leads_page_paginates_by_50(tenant):
    events_ingest(
        project_id=tenant.project.id,
        events=[CanonicalEvent(event_id=f"e{i}", name="page_view", anonymous_id=f"anon-{i:03d}",
                               timestamp=timezone.now()) for i in range(55)],
    )  # fmt: skip
    client = browser(tenant.owner)
    first = client.get("/leads/?ordering=name")
    second = client.get("/leads/?ordering=name&page=2")
    assert len(first.context["page"].object_list) == 50 and len(second.context["page"].object_list) == 5
    assert "ordering=name&amp;page=2" in first.content.decode()
    assert client.get("/leads/?page=banana").status_code == 200


def test_export_streams_the_filtered_leads_of_the_project_only(tenant, leads, theirs):
    response = browser(tenant.owner).get("/leads/export.csv?stage=qualified")
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    table = rows(response)
    assert table[0][:3] == ["id", "anonymousId", "userId"]
    assert [row[1] for row in table[1:]] == ["q-1"]
    everything = rows(browser(tenant.owner).get("/leads/export.csv"))
    assert len(everything) == 5 and "secret-lead" not in str(everything)


def test_export_defuses_formulas(tenant):
    scored_lead(tenant.project, "evil", "page_view", name='=HYPERLINK("http://x.example","click")',
                company="+cmd|' /C calc'!A0", traits={})  # fmt: skip
    scored_lead(tenant.project, "tabby", "page_view", name="\tTab", company="@SUM(1)")
    table = rows(browser(tenant.owner).get("/leads/export.csv?ordering=name"))
    header = table[0]
    by_id = {row[header.index("anonymousId")]: row for row in table[1:]}
    assert by_id["evil"][header.index("name")] == '\'=HYPERLINK("http://x.example","click")'
    assert by_id["evil"][header.index("company")] == "'+cmd|' /C calc'!A0"
    assert by_id["tabby"][header.index("name")] == "'\tTab" and by_id["tabby"][header.index("company")] == "'@SUM(1)"


def test_pages_need_sign_in(tenant, leads):
    for url in ("/leads/", f"/leads/{leads['hot'].id}/", "/rules/", "/leads/export.csv"):
        assert Client().get(url).status_code == 302


# A lead


def test_lead_page_shows_score_chart_timeline_breakdown_and_intelligence(tenant, leads):
    lead = leads["qualified"]
    Lead.objects.filter(pk=lead.pk).update(traits={"plan": "enterprise"})
    page = browser(tenant.owner).get(f"/leads/{lead.id}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert f'data-lead-id="{lead.id}"' in html and 'data-field="currentScore">80<' in html
    assert "<svg" in html and "Score over time" in html
    timeline = page.context["timeline"]
    assert [event.name for event, _ in timeline] == ["signup", "demo_request"]  # newest first
    assert all(row is not None for _, row in timeline) and timeline[0][1].new_score == 80
    breakdown = page.context["breakdown"]
    assert sum(rule["points"] for rule in breakdown["rules"]) == breakdown["foldScore"]
    assert page.context["intelligence"]["nextAction"] in html
    assert "enterprise" in html and "js/leads.js" in html


def test_lead_page_of_another_project_or_unknown_is_404(tenant, other_tenant, theirs):
    client = browser(tenant.owner)
    assert client.get(f"/leads/{theirs.id}/").status_code == 404
    assert client.get("/leads/999999999/").status_code == 404


def test_a_merged_away_lead_shows_its_survivor_with_the_merge_history(tenant, leads):
    source, target = leads["cold"], leads["warm"]
    lead_merge(source=source, target=target, reason="test")
    page = browser(tenant.owner).get(f"/leads/{source.id}/")
    assert page.status_code == 200 and page.context["lead"].id == target.id
    assert [lead.id for lead in page.context["history"]["mergedLeads"]] == [source.id]
    assert "cold-1" in page.content.decode()


# Rules


def test_rules_page_lists_both_kinds_with_the_forms(tenant, other_tenant):
    ScoringRule.objects.create(
        project=other_tenant.project,
        model=primary_model(other_tenant.project),
        name="Their secret rule",
        event_type="x",
        points=1,
    )
    ScoringRule.objects.create(project=tenant.project, model=primary_model(tenant.project), kind="fit",
                               name="Big company", conditions=[{"path": "traits.size", "op": "gte", "value": 100}],
                               points=10)  # fmt: skip
    page = browser(tenant.owner).get("/rules/")
    html = page.content.decode()
    assert page.status_code == 200
    assert page.context["engagement_rules"] and [r.name for r in page.context["fit_rules"]] == ["Big company"]
    assert "traits.size gte 100" in html and "Their secret rule" not in html
    assert 'name="conditions"' in html and 'name="warmThreshold"' in html and 'id="rescore-jobs"' in html


def test_create_a_rule_through_the_page(tenant):
    client = browser(tenant.owner)
    response = client.post("/rules/", rule_post())
    assert response.status_code == 302
    rule = ScoringRule.objects.get(project=tenant.project, name="Pricing")
    assert (rule.event_type, rule.points, rule.max_per_lead, rule.is_active) == ("page_view", 7, 3, True)
    assert rule.conditions == [{"path": "properties.url", "op": "contains", "value": "/pricing"}]
    assert RescoreJob.objects.filter(project=tenant.project).exists()
    assert "Pricing" in client.get("/rules/").content.decode()


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"conditions": json.dumps([{"path": "properties.url", "op": "resembles", "value": "x"}])},
         "conditions", "conditions[0].op: Unknown operator"),
        ({"conditions": "[{"}, "conditions", "Not valid JSON"),
        ({"eventType": ""}, "eventType", "An event name"),
        ({"maxPerLead": "0"}, "maxPerLead", "greater than or equal to 1"),
    ],
)  # fmt: skip
def test_a_bad_rule_is_shown_with_its_field_error_and_not_saved(tenant, overrides, field, message):
    count = ScoringRule.objects.count()
    page = browser(tenant.owner).post("/rules/", rule_post(**overrides))
    assert page.status_code == 200
    assert any(message in error for error in page.context["rule_form"].errors[field])
    assert message.split(":")[0] in page.content.decode()
    assert ScoringRule.objects.count() == count


def test_edit_toggle_and_delete_a_rule(tenant):
    client = browser(tenant.owner)
    rule = ScoringRule.objects.filter(project=tenant.project).first()
    form = client.get(f"/rules/{rule.id}/")
    assert form.status_code == 200 and form.context["rule_form"].initial["eventType"] == rule.event_type
    assert client.post(f"/rules/{rule.id}/", rule_post(name="Renamed", points="11")).status_code == 302
    rule.refresh_from_db()
    assert (rule.name, rule.points) == ("Renamed", 11)
    client.post(f"/rules/{rule.id}/toggle/")
    rule.refresh_from_db()
    assert rule.is_active is False
    client.post(f"/rules/{rule.id}/toggle/")
    rule.refresh_from_db()
    assert rule.is_active is True
    assert client.get(f"/rules/{rule.id}/toggle/").status_code == 405
    client.post(f"/rules/{rule.id}/delete/")
    assert not ScoringRule.objects.filter(id=rule.id).exists()


def test_rules_of_another_project_are_404(tenant, other_tenant):
    theirs = ScoringRule.objects.filter(project=other_tenant.project).first()
    client = browser(tenant.owner)
    for url in (f"/rules/{theirs.id}/", f"/rules/{theirs.id}/toggle/", f"/rules/{theirs.id}/delete/"):
        assert client.post(url, rule_post()).status_code == 404
    assert ScoringRule.objects.filter(id=theirs.id, is_active=True, name=theirs.name).exists()


def test_members_can_look_and_preview_but_not_change(tenant):
    client = member_of(tenant)
    rule = ScoringRule.objects.filter(project=tenant.project).first()
    page = client.get("/rules/")
    assert page.status_code == 200 and f"/rules/{rule.id}/delete/" not in page.content.decode()
    assert client.post("/rules/", rule_post()).status_code == 403
    assert client.post(f"/rules/{rule.id}/", rule_post()).status_code == 403
    assert client.post(f"/rules/{rule.id}/toggle/").status_code == 403
    assert client.post(f"/rules/{rule.id}/delete/").status_code == 403
    assert client.post("/rules/settings/", {"warmThreshold": "1"}).status_code == 403
    assert client.post("/rules/", rule_post(preview="1")).status_code == 200
    assert ScoringRule.objects.filter(id=rule.id, is_active=True).exists()
    assert not ScoringRule.objects.filter(name="Pricing").exists()
    assert member_of(tenant, role="admin").post(f"/rules/{rule.id}/toggle/").status_code == 302


def test_preview_shows_the_what_if_and_saves_nothing(tenant, leads):
    before = list(ScoringRule.objects.values_list("id", "points", "is_active"))
    scores = dict(Lead.objects.values_list("id", "current_score"))
    client = browser(tenant.owner)
    page = client.post(
        "/rules/", rule_post(eventType="signup", points="500", conditions="[]", maxPerLead="", preview="1")
    )
    preview = page.context["preview"]
    assert page.status_code == 200 and preview["scoreChanged"] == 2  # the two leads with a signup
    assert preview["topMovers"][0]["anonymousId"] in {"warm-1", "q-1"}
    assert 'data-preview="scoreChanged">2<' in page.content.decode()
    # an edit previews the changed rule in place of the saved one
    signup = ScoringRule.objects.get(project=tenant.project, event_type="signup")
    edit = client.post(f"/rules/{signup.id}/", rule_post(eventType="signup", points="0", conditions="[]", preview="1"))
    assert edit.context["preview"]["scoreChanged"] == 2
    assert list(ScoringRule.objects.values_list("id", "points", "is_active")) == before
    assert dict(Lead.objects.values_list("id", "current_score")) == scores
    assert not RescoreJob.objects.exists()


def test_settings_form_saves_and_validates(tenant):
    client = browser(tenant.owner)
    data = {"warmThreshold": "10", "hotThreshold": "40", "qualifiedThreshold": "70", "maxScore": "100",
            "decayEnabled": "on", "decayRatePercent": "5", "decayGraceDays": "3"}  # fmt: skip
    assert client.post("/rules/settings/", data).status_code == 302
    model = primary_model(tenant.project)
    assert (model.warm_threshold, model.decay_enabled, model.decay_rate_percent) == (
        10, True, 5.0)  # fmt: skip
    bad = client.post("/rules/settings/", {**data, "hotThreshold": "5"})
    assert bad.status_code == 200 and "Thresholds must rise" in bad.content.decode()
    assert bad.context["settings_form"].errors["hotThreshold"]
    unticked = {key: value for key, value in data.items() if key != "decayEnabled"}
    client.post("/rules/settings/", unticked)
    assert primary_model(tenant.project).decay_enabled is False


def test_rescore_progress_is_rendered_and_refreshable(tenant):
    RescoreJob.objects.create(project=tenant.project, reason="rule 1 changed", status="running", total=40, done=10)
    client = browser(tenant.owner)
    assert "10/40" in client.get("/rules/").content.decode()
    fragment = client.get("/rules/rescore-jobs/").content.decode()
    assert "10/40" in fragment and 'data-active="1"' in fragment and "<html" not in fragment


# Query budgets


def test_leads_pages_keep_a_fixed_query_budget(tenant, django_assert_max_num_queries):
    scored_lead(tenant.project, "first", "signup", "demo_request")
    client = browser(tenant.owner)
    lead = Lead.objects.get(anonymous_id="first")
    budgets = {}
    for url in ("/leads/", f"/leads/{lead.id}/", "/rules/"):
        client.get(url)
        with django_assert_max_num_queries(30) as captured:
            client.get(url)
        budgets[url] = len(captured.captured_queries)
    for i in range(30):
        scored_lead(tenant.project, f"more-{i}", "page_view", "signup", "page_view")
    for i in range(3):
        lead_merge(source=scored_lead(tenant.project, f"dup-{i}", "page_view"), target=lead, reason="test")
    ScoringRule.objects.create(
        project=tenant.project, model=primary_model(tenant.project), name="extra", event_type="page_view", points=1
    )
    assert ScoreHistory.objects.filter(lead=lead).count() > 2
    for url, budget in budgets.items():
        with django_assert_max_num_queries(budget):
            assert client.get(url).status_code == 200
