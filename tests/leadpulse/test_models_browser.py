"""Scoring models in a real browser, on the production topology (uvicorn on the test PostgreSQL, Celery
workers, Redis): create a model on the models page, give it a rule, switch the leads list to it and see the
order change, make it primary, delete the old one through the confirmation. Screenshots go to
test-artifacts/pages/."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from ingest.models import Lead
from scoring.models import LeadScore, ScoringModel
from tests.accounts.factories import project_with_owner
from tests.leadpulse.test_dashboard_browser import SHOTS, ingest, settled, signed_in
from tests.live import wait_until

pytestmark = pytest.mark.live


@pytest.fixture
def web(live_pipeline, live_web):
    """`uvicorn leadpulse.asgi:application`, the Procfile's web process, on the test database (the session's)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    return live_web


def names_in_order(page) -> list[str]:
    return [text.strip() for text in page.locator("#leads tbody tr td:first-child a").all_inner_texts()]


def model_score(project, anonymous_id: str, key: str) -> int | None:
    row = LeadScore.objects.filter(lead__project=project, lead__anonymous_id=anonymous_id, model__key=key).first()
    return row.score if row else None


def in_thread(query):
    """Run a database query outside Playwright's event loop (Django refuses one inside it)."""

    def run():
        try:
            return query()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(run).result()


def test_create_a_model_switch_the_leads_to_it_make_it_primary_and_delete_the_old_one(web):
    project, owner, key = project_with_owner(name="Models Co")
    other, _, other_key = project_with_owner(name="Secret Other Co")
    ingest(key, [{"eventType": "page_view", "leadId": "viewer", "eventId": f"v{i}"} for i in range(4)])  # 20
    ingest(key, [{"eventType": "demo_request", "leadId": "demo", "eventId": "d1"}])  # 50
    ingest(other_key, [{"eventType": "signup", "leadId": "their-lead", "eventId": "t1"}])
    ScoringModel.objects.create(project=other, key="their-model", name="Their model")
    wait_until(lambda: settled(project) and settled(other), timeout=60, message="scoring")
    assert dict(Lead.objects.filter(project=project).values_list("anonymous_id", "current_score")) == {
        "viewer": 20,
        "demo": 50,
    }

    viewer = Lead.objects.get(project=project, anonymous_id="viewer")

    with signed_in(web, owner.email) as (page, errors, console):
        # the models page: only the default model; create "views-first" from nothing
        page.get_by_role("link", name="Models").click()
        page.wait_for_url(f"{web}/models/")
        assert page.locator("#models tbody tr").count() == 1
        page.fill("#model-create-form input[name=key]", "views-first")
        page.fill("#model-create-form input[name=name]", "Views first")
        page.fill("#model-create-form textarea[name=description]", "Every page view counts")
        page.select_option("#model-create-form select[name=copyFrom]", "")
        page.get_by_role("button", name="Create model").click()
        page.wait_for_url(f"{web}/models/")
        row = page.locator('tr[data-model="views-first"]')
        assert "Views first" in row.inner_text() and "0 rules" in row.inner_text()
        assert "Model views-first created" in page.locator(".messages").inner_text()
        assert page.locator('tr[data-model="default"] [data-primary]').count() == 1
        page.screenshot(path=str(SHOTS / "models.png"), full_page=True)

        # its rules page (the link keeps the model): page views are worth 30 there
        row.get_by_role("link", name="0 rules").click()
        page.wait_for_url(lambda url: url == f"{web}/rules/?model=views-first")
        assert page.locator("#model-select").input_value() == "views-first"
        page.fill("#rule-form input[name=name]", "Views")
        page.fill("#rule-form input[name=eventType]", "page_view")
        page.fill("#rule-form input[name=points]", "30")
        page.get_by_role("button", name="Save", exact=True).click()
        page.wait_for_url(lambda url: url == f"{web}/rules/?model=views-first")
        assert "page_view" in page.locator("#rules-engagement").inner_text()
        page.screenshot(path=str(SHOTS / "rules-model.png"), full_page=True)
        wait_until(
            lambda: in_thread(
                lambda: (
                    model_score(project, "viewer", "views-first") == 120
                    and model_score(project, "demo", "views-first") in (0, None)
                )
            ),
            timeout=60,
            message="the re-score under views-first",
        )

        # the leads list: demo first by the primary model; the switcher puts viewer first
        page.goto(f"{web}/leads/")
        assert names_in_order(page) == ["demo", "viewer"]
        page.select_option("#model-select", "views-first")  # dashboard.js submits on change
        page.wait_for_url(lambda url: url == f"{web}/leads/?model=views-first")
        assert names_in_order(page) == ["viewer", "demo"]
        assert page.locator('#leads [data-field="modelScore"]').all_inner_texts() == ["120", "0"]
        page.screenshot(path=str(SHOTS / "leads-model.png"), full_page=True)

        # left open, the list follows its own model live: another view is +30 there (+5 under default)
        page.wait_for_selector('[data-live="on"]', timeout=15000)
        in_thread(lambda: ingest(key, [{"eventType": "page_view", "leadId": "viewer", "eventId": "v-live"}]))
        page.wait_for_function(
            "() => document.querySelector('#leads tr [data-field=modelScore]').textContent === '150'",
            timeout=30000,
        )
        wait_until(lambda: in_thread(lambda: settled(project)), timeout=30, message="the live view scored")

        # a lead, under the same model (the link keeps it), with every model's result
        page.get_by_role("link", name="viewer").click()
        page.wait_for_url(lambda url: url == f"{web}/leads/{viewer.id}/?model=views-first")
        assert page.locator('#lead-header [data-field="modelScore"]').inner_text() == "150"
        assert "25" in page.locator('#model-scores tr[data-model="default"]').inner_text()
        assert page.locator("#chart-score svg").count() == 1
        page.screenshot(path=str(SHOTS / "lead-model.png"), full_page=True)

        # the overview ranks by it too
        page.goto(f"{web}/?model=views-first")
        assert "viewer" in page.locator("table tbody tr").first.inner_text()

        # make it primary: the leads list follows it by default
        page.goto(f"{web}/models/")
        page.locator('tr[data-model="views-first"]').get_by_role("button", name="Make primary").click()
        page.wait_for_url(f"{web}/models/")
        assert page.locator('tr[data-model="views-first"] [data-primary]').count() == 1
        assert page.locator('tr[data-model="default"] [data-primary]').count() == 0
        page.goto(f"{web}/leads/")
        assert names_in_order(page) == ["viewer", "demo"]
        assert page.locator('#leads [data-field="currentScore"]').all_inner_texts() == ["150", "0"]

        # the primary one cannot be deleted; the old default can, after the confirmation
        page.goto(f"{web}/models/views-first/delete/")
        assert "make another model primary first" in page.locator("#model-delete").inner_text()
        assert page.locator("#model-delete button").count() == 0
        page.goto(f"{web}/models/")
        page.locator('tr[data-model="default"]').get_by_role("link", name="Delete").click()
        page.wait_for_url(f"{web}/models/default/delete/")
        page.screenshot(path=str(SHOTS / "model-delete.png"), full_page=True)
        assert in_thread(lambda: ScoringModel.objects.filter(project=project, key="default").exists())  # not yet
        page.get_by_role("button", name="Delete default").click()
        page.wait_for_url(f"{web}/models/")
        assert page.locator('tr[data-model="default"]').count() == 0
        assert "Model default deleted." in page.locator(".messages").inner_text()
        page.screenshot(path=str(SHOTS / "models-after-delete.png"), full_page=True)

        assert errors == [] and console == []  # before the 404s, each of which logs a failed load

        # another project's model is a 404 everywhere; nothing of it shows
        for path in ("/models/their-model/", "/models/their-model/delete/", "/leads/?model=their-model"):
            assert page.goto(f"{web}{path}").status == 404, path
        page.goto(f"{web}/models/")
        assert "their-model" not in page.content() and "Secret Other Co" not in page.content()

        assert errors == []

    assert list(ScoringModel.objects.filter(project=project).values_list("key", "is_primary")) == [
        ("views-first", True)
    ]
    assert ScoringModel.objects.filter(project=other, key="their-model").exists()
