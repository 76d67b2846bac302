"""Lead facets, live, in a real browser on the production topology (uvicorn, Celery workers, Redis as broker and
channel layer): a leads list left open shows a lead's company move (`company.updated`) and its conversion
probability change (`predictions.updated`) without a reload; so does the lead page's probability card."""

import pytest

from companies.models import Company
from ingest.models import Lead
from predictions.models import LeadPrediction
from predictions.services.training import lead_predictions_refresh
from tests.accounts.factories import project_with_owner
from tests.browser.support import poll
from tests.companies.test_browser import company_result, person, segment_batch, web  # noqa: F401 (a fixture)
from tests.leadpulse.test_dashboard_browser import SHOTS, settled, signed_in
from tests.leadpulse.test_models_browser import in_thread
from tests.live import wait_until
from tests.predictions.support import prediction_world

pytestmark = pytest.mark.live


def probability(lead_id: int) -> float | None:
    row = LeadPrediction.objects.filter(lead_id=lead_id, prediction_model__active=True).first()
    return round(row.probability, 4) if row else None


def test_a_leads_list_left_open_shows_company_and_probability_changes_live(web):  # noqa: F811
    project, owner, key = project_with_owner(name="Facets Live Co")
    prediction_world(project)  # an active prediction model: scoring batches recompute probabilities
    segment_batch(key, [*person("ann", "ann@acme.com", "email_open"), *person("bob", "bob@acme.com", "email_open")])
    wait_until(lambda: company_result(project, "acme.com") == (20, "warm"), timeout=60, message="Acme rolled up")
    wait_until(lambda: settled(project), timeout=60, message="scoring")
    ann = Lead.objects.get(project=project, anonymous_id="ann")
    acme = Company.objects.get(project=project, key="acme.com")
    lead_predictions_refresh(project_id=project.id, lead_ids=[ann.id])
    before = probability(ann.id)
    assert before is not None

    with signed_in(web, owner.email) as (page, errors, console):
        page.goto(f"{web}/leads/")
        page.wait_for_selector('[data-live="on"]', timeout=15000)
        page.evaluate("window.__notReloaded = true")
        row = page.locator(f'tr[data-lead-id="{ann.id}"]')
        company = row.locator('td[data-facet="associatedCompany"]')
        assert company.locator("[data-company-id]").get_attribute("data-company-id") == str(acme.id)
        assert company.locator('[data-field="companyStage"]').inner_text() == "warm"
        assert company.locator('[data-field="companyScore"]').inner_text() == "20"
        cell = row.locator('td[data-facet="conversionProbability"] [data-probability]')
        assert float(cell.get_attribute("data-probability")) == before
        page.screenshot(path=str(SHOTS / "leads-facets-before.png"), full_page=True)

        # cy joins Acme and makes it hot: ann's (and bob's) company cell follows the company's broadcast
        in_thread(lambda: segment_batch(key, person("cy", "cy@eu.acme.com", "email_open", "page_view")))
        stage = f'tr[data-lead-id="{ann.id}"] td[data-facet="associatedCompany"] [data-field="companyStage"]'
        page.wait_for_function(f"() => document.querySelector('{stage}').textContent === 'hot'", timeout=30000)
        hot = in_thread(lambda: company_result(project, "acme.com"))
        assert hot is not None and hot[1] == "hot"
        poll(page, lambda: company.locator('[data-field="companyScore"]').inner_text() == str(hot[0]),
             message="the company score")  # fmt: skip
        bob = page.locator("tr[data-lead-id]").filter(has_text="bob@acme.com")
        assert bob.locator('[data-field="companyStage"]').inner_text() == "hot"
        assert company.locator('[data-field="companyStage"]').get_attribute("class") == "stage stage-hot"

        # ann books demos: her scoring batch recomputes her probability, broadcast and applied to her cell
        in_thread(lambda: segment_batch(key, [
            {"type": "track", "event": "demo_request", "anonymousId": "ann", "messageId": f"ann-demo-{i}"}
            for i in range(3)
        ]))  # fmt: skip
        wait_until(lambda: in_thread(lambda: probability(ann.id)) != before, timeout=60, message="a new probability")
        after = in_thread(lambda: probability(ann.id))
        poll(page, lambda: cell.get_attribute("data-probability") == str(after), message="the probability cell")
        assert cell.inner_text() == f"{round(after * 100)}%"
        assert page.evaluate("window.__notReloaded") is True  # live, not reloaded
        page.screenshot(path=str(SHOTS / "leads-facets-live.png"), full_page=True)

        # the lead page's probability card follows too
        page.goto(f"{web}/leads/{ann.id}/")
        page.wait_for_selector('[data-live="on"]', timeout=15000)
        page.evaluate("window.__notReloaded = true")
        shown = page.locator("#probability-current strong")
        assert shown.inner_text() == f"{round(after * 100)}%"
        in_thread(lambda: segment_batch(key, [
            {"type": "track", "event": "pricing_page_visit", "anonymousId": "ann", "messageId": f"ann-price-{i}"}
            for i in range(4)
        ]))  # fmt: skip
        wait_until(lambda: in_thread(lambda: probability(ann.id)) != after, timeout=60, message="another probability")
        last = in_thread(lambda: probability(ann.id))
        poll(page, lambda: shown.inner_text() == f"{round(last * 100)}%", message="the probability card")
        assert page.locator("#probability-factors li").count() >= 1
        assert page.evaluate("window.__notReloaded") is True
        page.screenshot(path=str(SHOTS / "lead-facets-live.png"), full_page=True)

        assert errors == [] and console == []
