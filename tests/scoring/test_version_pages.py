"""Dashboard pages of rule-set versions and drafts: the versions page with its diff and rollback, and drafts
on the rules page (start, edit, preview, publish, discard). Members draft and preview; only admins publish
and roll back."""

import re

import pytest

from scoring.models import RescoreJob, RuleSetDraft, RuleSetVersion, ScoringRule
from scoring.services import rule_update, scoring_settings_update
from scoring.services.fold import primary_model
from tests.scoring.factories import scored_lead
from tests.scoring.test_model_pages import b_model
from tests.scoring.test_pages import browser, member_of, rule_post

pytestmark = pytest.mark.django_db


def page_view_rule(project) -> ScoringRule:
    return ScoringRule.objects.get(model=primary_model(project), name="Page view")


def page_view_post(**overrides):
    """The rule form of the default "Page view" rule, changed by `overrides`."""
    return rule_post(**{"name": "Page view", "conditions": "[]", "maxPerLead": "", **overrides})


def text(response) -> str:
    """The page's visible text, tags dropped and whitespace folded."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


@pytest.fixture
def v3(tenant):
    """On top of the default rules' v1: v2 page views 5 → 7 points, v3 at most 4 a day, v4 warm at 15 (live)."""
    rule_update(rule=page_view_rule(tenant.project), data={"points": 7}, author=tenant.owner)
    rule_update(rule=page_view_rule(tenant.project), data={"max_per_day": 4})
    scoring_settings_update(model=primary_model(tenant.project), data={"warm_threshold": 15})
    assert primary_model(tenant.project).version == 4
    return primary_model(tenant.project)


@pytest.fixture
def theirs(other_tenant):
    return b_model(other_tenant.project, key="theirs")


# The versions page


def test_versions_page_lists_versions_newest_first_with_the_live_one_and_diffs_against_the_previous(tenant, v3):
    page = browser(tenant.owner).get("/models/default/versions/")
    assert page.status_code == 200
    assert [v.number for v in page.context["versions"]] == [4, 3, 2, 1]
    html = page.content.decode()
    live = re.search(r'<tr data-version="4">(.*?)</tr>', html, re.S).group(1)
    assert "data-live" in live and "Roll back to v4" not in live
    v2 = re.search(r'<tr data-version="2">(.*?)</tr>', html, re.S).group(1)
    assert tenant.owner.email in v2 and "data-live" not in v2
    assert 'href="/models/default/versions/2/rollback/"' in v2
    # by default the live version against the one before it
    diff = page.context["diff"]
    assert (diff["before"].number, diff["after"].number) == (3, 4)
    assert diff["lines"] == {"settings": ["Warm at: 11 → 15"], "added": [], "removed": [], "changed": []}
    assert "Warm at: 11 → 15" in text(page)


def test_versions_page_diffs_any_two_versions_field_by_field(tenant, v3):
    client = browser(tenant.owner)
    page = client.get("/models/default/versions/?number=2")  # against the previous one
    assert page.context["diff"]["lines"]["changed"] == ["Page view: points 5 → 7"]
    assert "Page view: points 5 → 7" in text(page)
    page = client.get("/models/default/versions/?number=4&against=1")
    lines = page.context["diff"]["lines"]
    assert lines["settings"] == ["Warm at: 11 → 15"]
    assert lines["changed"] == ["Page view: points 5 → 7, max per day none → 4"]
    assert "Page view: points 5 → 7, max per day none → 4" in text(page)
    # backwards: what going from v4 to v1 would change
    page = client.get("/models/default/versions/?number=1&against=4")
    assert page.context["diff"]["lines"]["changed"] == ["Page view: points 7 → 5, max per day 4 → none"]


def test_versions_diff_shows_rules_added_and_removed(tenant):
    client = browser(tenant.owner)
    client.post("/rules/", rule_post(name="Pricing", points="7"))
    client.post(f"/rules/{page_view_rule(tenant.project).id}/delete/")
    page = client.get("/models/default/versions/?number=3&against=1")
    lines = page.context["diff"]["lines"]
    assert lines["added"] == ["Pricing (page_view, +7 points)"]
    assert lines["removed"] == ["Page view (page_view, +5 points)"]
    assert lines["changed"] == [] and lines["settings"] == []


def test_members_see_versions_but_no_rollback_button(tenant, v3):
    client = member_of(tenant)
    assert client.get("/models/default/versions/").status_code == 200
    page = client.get("/models/default/versions/2/rollback/")
    assert page.status_code == 200
    assert (
        "Only owners and admins roll back" in text(page)
        and "<button" not in page.content.decode().split('id="version-rollback"')[1].split("</section>")[0]
    )


def test_an_unknown_version_or_another_projects_model_is_404(tenant, v3, theirs):
    client = browser(tenant.owner)
    for path in (
        "/models/theirs/versions/",
        "/models/theirs/versions/1/rollback/",
        "/models/default/versions/?number=99",
        "/models/default/versions/?number=x",
        "/models/default/versions/?number=2&against=99",
        "/models/default/versions/99/rollback/",
    ):
        assert client.get(path).status_code == 404, path
    assert client.post("/models/theirs/versions/1/rollback/").status_code == 404
    assert theirs.version == 0 and not RuleSetVersion.objects.filter(model=theirs).exists()


def test_versions_page_keeps_a_fixed_query_budget(tenant, django_assert_num_queries):
    client = browser(tenant.owner)
    rule = page_view_rule(tenant.project)
    rule_update(rule=rule, data={"points": 6})
    client.get("/models/default/versions/")
    with django_assert_num_queries(8) as few:
        assert client.get("/models/default/versions/").status_code == 200
    for points in range(7, 27):
        rule_update(rule=rule, data={"points": points}, author=tenant.owner)
    with django_assert_num_queries(len(few.captured_queries)):
        page = client.get("/models/default/versions/")
    assert len(page.context["versions"]) == 22


# Rollback


def test_rollback_asks_then_publishes_the_old_version_and_re_scores(tenant, v3):
    client = browser(tenant.owner)
    lead = scored_lead(tenant.project, "viewer", "page_view", "page_view")
    assert lead.current_score == 14
    confirm = client.get("/models/default/versions/1/rollback/")
    assert confirm.status_code == 200
    assert "Roll back to v1" in text(confirm) and "Page view: points 7 → 5" in text(confirm)
    assert primary_model(tenant.project).version == 4  # asking changed nothing
    jobs = RescoreJob.objects.filter(project=tenant.project).count()

    response = client.post("/models/default/versions/1/rollback/", {"note": "too generous"})

    assert response.status_code == 302 and response["Location"] == "/models/default/versions/"
    model = primary_model(tenant.project)
    assert model.version == 5 and model.warm_threshold == 11
    rule = page_view_rule(tenant.project)
    assert (rule.points, rule.max_per_day) == (5, None)
    newest = RuleSetVersion.objects.get(model=model, number=5)
    assert (newest.note, newest.author) == ("too generous", tenant.owner)
    assert RescoreJob.objects.filter(project=tenant.project).count() == jobs + 1
    page = client.get(response["Location"])
    assert "Rolled back to v1 (published as v5); a re-score started." in text(page)
    assert "data-live" in re.search(r'<tr data-version="5">(.*?)</tr>', page.content.decode(), re.S).group(1)


def test_members_may_not_roll_back(tenant, v3):
    response = member_of(tenant).post("/models/default/versions/1/rollback/")
    assert response.status_code == 403
    assert primary_model(tenant.project).version == 4 and page_view_rule(tenant.project).points == 7
    assert member_of(tenant, role="admin").post("/models/default/versions/1/rollback/").status_code == 302
    assert page_view_rule(tenant.project).points == 5


# Drafts on the rules page


def draft_index(tenant, event_type: str) -> int:
    rules = RuleSetDraft.objects.get(model=primary_model(tenant.project)).document["rules"]
    return next(i for i, rule in enumerate(rules) if rule["event_type"] == event_type)


def test_members_draft_a_rule_change_and_nothing_goes_live(tenant):
    client = member_of(tenant)
    page = client.get("/rules/")
    assert 'action="/rules/draft/"' in page.content.decode() and page.context["draft"] is None

    assert client.post("/rules/draft/").status_code == 302
    draft = RuleSetDraft.objects.get(model=primary_model(tenant.project))
    assert draft.base_version == 1 and len(draft.document["rules"]) == 10
    page = client.get("/rules/")
    assert "Draft based on v1 — changes are not live" in text(page)
    assert "Only owners and admins publish a draft." in text(page)

    index = draft_index(tenant, "page_view")
    edit = client.get(f"/rules/draft/rules/{index}/")
    assert edit.status_code == 200 and edit.context["rule_form"]["points"].value() == 5
    response = client.post(f"/rules/draft/rules/{index}/", page_view_post(points="8"))
    assert response.status_code == 302 and response["Location"] == "/rules/"

    draft.refresh_from_db()
    drafted = draft.document["rules"][index]
    assert (drafted["id"], drafted["points"]) == (page_view_rule(tenant.project).id, 8)
    assert page_view_rule(tenant.project).points == 5 and primary_model(tenant.project).version == 1
    page = client.get("/rules/")
    row = re.search(rf'<tr data-draft-index="{index}"[^>]*>(.*?)</tr>', page.content.decode(), re.S).group(1)
    assert "+8" in row


def test_a_draft_takes_new_rules_removals_and_settings(tenant):
    client = member_of(tenant)
    client.post("/rules/draft/")
    assert client.post("/rules/draft/rules/", rule_post(name="Pricing")).status_code == 302
    index = draft_index(tenant, "email_open")
    assert client.post(f"/rules/draft/rules/{index}/delete/").status_code == 302
    settings = {"warmThreshold": "20", "hotThreshold": "40", "qualifiedThreshold": "70", "maxScore": "500",
                "decayEnabled": "", "decayRatePercent": "0", "decayGraceDays": "7"}  # fmt: skip
    assert client.post("/rules/draft/settings/", settings).status_code == 302

    document = RuleSetDraft.objects.get(model=primary_model(tenant.project)).document
    added = document["rules"][-1]
    assert "id" not in added and (added["name"], added["points"], added["max_per_lead"]) == ("Pricing", 7, 3)
    assert added["conditions"] == [{"path": "properties.url", "op": "contains", "value": "/pricing"}]
    assert "email_open" not in [rule["event_type"] for rule in document["rules"]]
    assert (document["settings"]["warm_threshold"], document["settings"]["max_score"]) == (20, 500)
    model = primary_model(tenant.project)
    assert (model.warm_threshold, model.version) == (11, 1)
    assert ScoringRule.objects.filter(model=model, event_type="email_open").exists()
    assert client.get("/rules/").context["settings_form"]["warmThreshold"].value() == 20


def test_an_invalid_draft_rule_is_shown_with_its_errors_and_not_saved(tenant):
    client = member_of(tenant)
    client.post("/rules/draft/")
    before = RuleSetDraft.objects.get(model=primary_model(tenant.project)).document
    response = client.post("/rules/draft/rules/0/", rule_post(conditions="[not json"))
    assert response.status_code == 400 and "Not valid JSON" in response.content.decode()
    assert RuleSetDraft.objects.get(model=primary_model(tenant.project)).document == before
    assert client.get("/rules/draft/rules/99/").status_code == 404


def test_preview_shows_what_the_draft_would_do_to_the_leads(tenant):
    scored_lead(tenant.project, "viewer", *["page_view"] * 4)  # 20, warm
    scored_lead(tenant.project, "demo", "demo_request")  # 50, hot
    client = member_of(tenant)
    client.post("/rules/draft/")
    client.post(f"/rules/draft/rules/{draft_index(tenant, 'page_view')}/", page_view_post(points="8"))

    page = client.post("/rules/draft/preview/")

    assert page.status_code == 200
    preview = page.context["draft_preview"]
    assert (preview["leadsEvaluated"], preview["scoreChanged"], preview["stageChanged"]) == (2, 1, 1)
    assert preview["stageTransitions"] == {"warm->hot": 1}
    stages = {row["stage"]: (row["before"], row["after"]) for row in preview["distribution"]["stages"]}
    assert stages["warm"] == (1, 0) and stages["hot"] == (2 - 1, 2)
    html = page.content.decode()
    assert 'id="draft-preview"' in html and "20 → 32 (+12)" in text(page)
    assert re.search(r'<tr data-stage="hot"><td>hot</td><td>1</td><td>2</td></tr>', html)
    assert page_view_rule(tenant.project).points == 5  # nothing saved


def test_only_admins_publish_a_draft(tenant):
    member = member_of(tenant)
    member.post("/rules/draft/")
    member.post(f"/rules/draft/rules/{draft_index(tenant, 'page_view')}/", page_view_post(points="8"))
    assert member.post("/rules/draft/publish/", {"note": "mine"}).status_code == 403
    assert primary_model(tenant.project).version == 1 and RuleSetDraft.objects.exists()
    jobs = RescoreJob.objects.filter(project=tenant.project).count()

    owner = browser(tenant.owner)
    response = owner.post("/rules/draft/publish/", {"note": "page views matter more"})

    assert response.status_code == 302 and response["Location"] == "/rules/"
    model = primary_model(tenant.project)
    assert model.version == 2 and page_view_rule(tenant.project).points == 8
    version = RuleSetVersion.objects.get(model=model, number=2)
    assert (version.note, version.author) == ("page views matter more", tenant.owner)
    assert not RuleSetDraft.objects.filter(model=model).exists()
    assert RescoreJob.objects.filter(project=tenant.project).count() == jobs + 1
    page = owner.get("/rules/")
    assert "Draft published as v2; the project is being re-scored." in text(page)
    assert page.context["draft"] is None and 'action="/rules/draft/"' in page.content.decode()
    assert "v2" in page.content.decode().split("data-live-version>")[1][:5]


def test_discarding_a_draft_leaves_the_live_rules(tenant):
    client = member_of(tenant)
    client.post("/rules/draft/")
    client.post(f"/rules/draft/rules/{draft_index(tenant, 'page_view')}/delete/")
    assert client.post("/rules/draft/discard/").status_code == 302
    assert not RuleSetDraft.objects.exists()
    assert page_view_rule(tenant.project).points == 5 and primary_model(tenant.project).version == 1
    assert client.post("/rules/draft/discard/").status_code == 404  # nothing left to discard


def test_drafts_of_another_model_and_another_projects_model(tenant, theirs):
    client = browser(tenant.owner)
    b = b_model(tenant.project)
    assert client.post("/rules/draft/?model=b").status_code == 302
    assert RuleSetDraft.objects.filter(model=b).exists()
    assert not RuleSetDraft.objects.filter(model=primary_model(tenant.project)).exists()
    assert "Draft based on v0" in text(client.get("/rules/?model=b"))
    assert client.get("/rules/").context["draft"] is None  # the primary model has none
    for path in ("/rules/draft/", "/rules/draft/rules/", "/rules/draft/preview/", "/rules/draft/publish/",
                 "/rules/draft/discard/", "/rules/draft/settings/"):  # fmt: skip
        assert client.post(f"{path}?model=theirs", rule_post()).status_code == 404, path
    assert not RuleSetDraft.objects.filter(model=theirs).exists()
    # without a draft, the draft's pages are 404 and live editing works as before
    assert client.post("/rules/draft/preview/").status_code == 404
    assert client.post("/rules/", rule_post()).status_code == 302
    assert primary_model(tenant.project).version == 2


# A lead's score under a version


def test_lead_page_shows_the_score_under_an_earlier_version(tenant, v3):
    lead = scored_lead(tenant.project, "viewer", *["page_view"] * 2)  # under v4: 14 (7 a view), warm at 15: cold
    client = browser(tenant.owner)
    page = client.get(f"/leads/{lead.id}/")
    assert [v.number for v in page.context["versions"]] == [4, 3, 2, 1] and page.context["at_version"] is None
    assert 'id="version-select"' in page.content.decode()

    page = client.get(f"/leads/{lead.id}/?version=1")  # 5 a view, warm at 11

    result = page.context["at_version"]
    assert (result["version"], result["liveVersion"], result["score"], result["stage"]) == (1, 4, 10, "cold")
    page = client.get(f"/leads/{lead.id}/?version=4")
    assert (page.context["at_version"]["score"], page.context["at_version"]["stage"]) == (14, "cold")
    rule_update(rule=page_view_rule(tenant.project), data={"points": 20})  # v5: 40, hot
    page = client.get(f"/leads/{lead.id}/?version=5")
    html = page.content.decode()
    assert 'data-field="versionScore">40<' in html and 'data-field="versionStage">hot<' in html
    assert client.get(f"/leads/{lead.id}/?version=99").status_code == 404
    assert member_of(tenant).get(f"/leads/{lead.id}/?version=1").status_code == 200


def test_a_draft_older_than_the_live_version_says_so(tenant):
    client = browser(tenant.owner)
    client.post("/rules/draft/")
    assert "data-draft-stale" not in client.get("/rules/").content.decode()
    rule_update(rule=page_view_rule(tenant.project), data={"points": 9})  # a live edit after the draft started
    page = client.get("/rules/")
    assert "v2 is live now: publishing the draft replaces what changed since v1" in text(page)


def test_publishing_a_draft_discarded_since_the_page_was_shown_is_404(tenant):
    client = browser(tenant.owner)
    client.post("/rules/draft/")
    RuleSetDraft.objects.all().delete()  # between the page and the click
    assert client.post("/rules/draft/publish/").status_code == 404
    assert primary_model(tenant.project).version == 1
