"""Rule-set versions in a real browser, on the production topology (uvicorn on the test PostgreSQL, Celery
workers, Redis): start a draft, change a rule's points in it, preview the stage transitions, publish it as
v2 and watch the re-score; then roll back to v1 through the confirmation and see the points restored, and
the lead's score under v2 on its page.
Screenshots go to test-artifacts/pages/."""

import pytest

from ingest.models import Lead
from scoring.models import RuleSetDraft, RuleSetVersion, ScoringModel, ScoringRule
from tests.accounts.factories import project_with_owner
from tests.leadpulse.test_dashboard_browser import SHOTS, ingest, settled, signed_in
from tests.leadpulse.test_models_browser import in_thread
from tests.live import wait_until

pytestmark = pytest.mark.live


@pytest.fixture
def web(live_pipeline, live_web):
    """`uvicorn leadpulse.asgi:application`, the Procfile's web process, on the test database (the session's)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    return live_web


def score_of(project, anonymous_id: str) -> int:
    return Lead.objects.get(project=project, anonymous_id=anonymous_id).current_score


def test_draft_preview_publish_then_roll_back(web):
    project, owner, key = project_with_owner(name="Versions Co")
    other, _, _ = project_with_owner(name="Secret Other Co")
    ingest(key, [{"eventType": "page_view", "leadId": "viewer", "eventId": f"v{i}"} for i in range(4)])  # 20, warm
    ingest(key, [{"eventType": "demo_request", "leadId": "demo", "eventId": "d1"}])  # 50, hot
    ScoringModel.objects.create(project=other, key="their-model", name="Their model")
    wait_until(lambda: settled(project), timeout=60, message="scoring")
    assert score_of(project, "viewer") == 20 and score_of(project, "demo") == 50
    model = ScoringModel.objects.get(project=project, is_primary=True)
    assert model.version == 1
    page_view = ScoringRule.objects.get(model=model, name="Page view")
    viewer = Lead.objects.get(project=project, anonymous_id="viewer")

    with signed_in(web, owner.email) as (page, errors, console):
        # the rules page: start a draft, a copy of v1
        page.get_by_role("link", name="Rules").click()
        page.wait_for_url(f"{web}/rules/")
        assert page.locator("[data-live-version]").inner_text() == "v1"
        page.get_by_role("button", name="Start a draft").click()
        page.wait_for_url(f"{web}/rules/")
        assert "Draft based on v1 — changes are not live" in page.locator("#draft-banner").inner_text()

        # page views are worth 8 in the draft (4 views: 20 → 32, warm → hot); nothing is live yet
        row = page.locator(f'#rules-engagement tr[data-rule-id="{page_view.id}"]')
        row.get_by_role("link", name="Edit").click()
        page.wait_for_url(lambda url: "/rules/draft/rules/" in url)
        assert page.locator("#rule-form input[name=points]").input_value() == "5"
        page.fill("#rule-form input[name=points]", "8")
        page.get_by_role("button", name="Save in draft").click()
        page.wait_for_url(f"{web}/rules/")
        assert "+8" in row.inner_text()
        assert in_thread(lambda: ScoringRule.objects.get(id=page_view.id).points) == 5

        # the preview: viewer would move from warm to hot; demo stays
        page.get_by_role("button", name="Preview the draft").click()
        page.wait_for_selector("#draft-preview")
        preview = page.locator("#draft-preview")
        assert preview.locator('[data-preview="scoreChanged"]').inner_text() == "1"
        assert preview.locator('[data-preview="stageChanged"]').inner_text() == "1"
        assert preview.locator('[data-transition="warm->hot"]').inner_text() == "warm->hot: 1"
        assert preview.locator('#preview-stages tr[data-stage="hot"]').inner_text().split() == ["hot", "1", "2"]
        assert "20 → 32 (+12)" in preview.locator("#preview-movers").inner_text()
        page.screenshot(path=str(SHOTS / "rules-draft-preview.png"), full_page=True)

        # publish as v2: live, and the re-score gives viewer 32
        page.fill("#draft-publish input[name=note]", "page views matter more")
        page.get_by_role("button", name="Publish as v2").click()
        page.wait_for_url(f"{web}/rules/")
        assert "Draft published as v2; the project is being re-scored." in page.locator(".messages").inner_text()
        assert page.locator("[data-live-version]").inner_text() == "v2"
        assert page.locator("#draft-banner").count() == 0
        wait_until(lambda: in_thread(lambda: score_of(project, "viewer")) == 32, timeout=60, message="re-score v2")
        page.screenshot(path=str(SHOTS / "rules-published.png"), full_page=True)

        # the versions page: v2 live, its diff against v1 field by field
        page.get_by_role("link", name="Versions").click()
        page.wait_for_url(f"{web}/models/default/versions/")
        assert page.locator('#versions tr[data-version="2"] [data-live]').count() == 1
        assert "page views matter more" in page.locator('#versions tr[data-version="2"]').inner_text()
        assert page.locator('#version-diff [data-diff="changed"]').inner_text() == "Page view: points 5 → 8"
        page.screenshot(path=str(SHOTS / "versions.png"), full_page=True)

        # roll back to v1 through the confirmation
        page.locator('#versions tr[data-version="1"]').get_by_role("link", name="Roll back to v1").click()
        page.wait_for_url(f"{web}/models/default/versions/1/rollback/")
        assert "Page view: points 8 → 5" in page.locator("#version-rollback").inner_text()
        page.screenshot(path=str(SHOTS / "version-rollback.png"), full_page=True)
        assert in_thread(lambda: ScoringModel.objects.get(id=model.id).version) == 2  # not yet
        page.get_by_role("button", name="Roll back to v1").click()
        page.wait_for_url(f"{web}/models/default/versions/")
        assert "Rolled back to v1 (published as v3); a re-score started." in page.locator(".messages").inner_text()
        assert page.locator('#versions tr[data-version="3"] [data-live]').count() == 1
        wait_until(lambda: in_thread(lambda: score_of(project, "viewer")) == 20, timeout=60, message="re-score v3")
        page.screenshot(path=str(SHOTS / "versions-after-rollback.png"), full_page=True)

        # the rules page shows the points restored
        page.goto(f"{web}/rules/")
        assert "+5" in page.locator(f'#rules-engagement tr[data-rule-id="{page_view.id}"]').inner_text()
        assert page.locator("[data-live-version]").inner_text() == "v3"

        # the lead page: the viewer's score under v2 (8 a view), recomputed from its log, while v3 is live
        page.goto(f"{web}/leads/{viewer.id}/")
        page.select_option("#version-select", "2")
        page.get_by_role("button", name="Show").click()
        page.wait_for_url(f"{web}/leads/{viewer.id}/?version=2")
        assert page.locator('[data-field="versionScore"]').inner_text() == "32"
        assert page.locator('[data-field="versionStage"]').inner_text() == "hot"
        assert "live is v3" in page.locator("#version-score").inner_text()
        page.screenshot(path=str(SHOTS / "lead-version-score.png"), full_page=True)

        assert errors == [] and console == []

        # another project's model is a 404
        for path in ("/models/their-model/versions/", "/models/their-model/versions/1/rollback/"):
            assert page.goto(f"{web}{path}").status == 404, path

    assert ScoringRule.objects.get(id=page_view.id).points == 5
    assert list(RuleSetVersion.objects.filter(model=model).order_by("number").values_list("number", "note")) == [
        (1, "the default rules"),
        (2, "page views matter more"),
        (3, "rollback to v1"),
    ]
    assert not RuleSetDraft.objects.filter(model=model).exists()
    assert score_of(project, "viewer") == 20
