"""The predictions page in a real browser (uvicorn, workers, Redis): train, watch the job's progress, read the report,
apply the suggestions as a draft. Screenshots go to test-artifacts/pages/."""

import pytest

from ingest.models import Event, Lead
from predictions.models import LeadPrediction
from scoring.models import RuleSetDraft
from tests.accounts.factories import project_with_owner
from tests.browser.support import poll
from tests.leadpulse.test_dashboard_browser import SHOTS, signed_in, web  # noqa: F401 (a fixture)
from tests.live import wait_until
from tests.predictions.support import synthetic_project

pytestmark = pytest.mark.live


def test_an_admin_trains_from_the_page_reads_the_report_and_applies_the_suggestions_as_a_draft(web):  # noqa: F811
    project, owner, _key = project_with_owner(name="Predictions Co")
    synthetic_project(project, count=300)
    wait_until(lambda: not Event.objects.filter(project=project, processed_at__isnull=True).exists(), timeout=120,
               message="the synthetic events scored")  # fmt: skip

    with signed_in(web, owner.email) as (page, errors, console):
        page.get_by_role("link", name="Predictions").click()
        page.wait_for_url(f"{web}/predictions/")
        assert page.locator("#model-none").count() == 1

        # train: the page follows the job (its script polls the job) and shows the report when it is done
        page.get_by_role("button", name="Train now").click()
        page.wait_for_selector("#training-progress, #model-current", timeout=15000)
        poll(page, lambda: page.locator("#model-current").count() == 1, timeout=120, message="the trained model")
        assert page.locator("#report-headline [data-auc=model]").count() == 1
        assert float(page.locator("#report-headline [data-auc=model]").inner_text()) >= 0.7
        assert page.locator("#chart-calibration svg").count() == 1 and page.locator("#chart-lift svg").count() == 1
        assert page.locator("#suggested-points tbody tr[data-event-type]").count() > 0
        page.screenshot(path=str(SHOTS / "predictions.png"), full_page=True)

        # the probability on the leads list, sorted by it, and the factors on a lead's page
        page.goto(f"{web}/leads/?ordering=-conversionProbability")
        shown = [float(p) for p in page.locator("[data-probability]").evaluate_all(
            "cells => cells.map(cell => cell.getAttribute('data-probability'))")]  # fmt: skip
        assert len(shown) > 1 and shown == sorted(shown, reverse=True)
        top = page.locator("tr[data-lead-id]").first.get_attribute("data-lead-id")
        page.goto(f"{web}/leads/{top}/")
        assert page.locator("#probability-factors li").count() == 3
        page.screenshot(path=str(SHOTS / "lead-probability.png"), full_page=True)

        # apply the suggestions at another target precision: they land in the draft, previewed on the rules page
        page.goto(f"{web}/predictions/")
        page.select_option("#target-select", "0.7")
        page.wait_for_url(f"{web}/predictions/?target=0.7")
        page.get_by_role("button", name="Apply as draft").click()
        page.wait_for_url(f"{web}/rules/")
        page.screenshot(path=str(SHOTS / "predictions-draft.png"), full_page=True)

        assert errors == [] and console == []
    assert RuleSetDraft.objects.filter(project=project).count() == 1
    assert LeadPrediction.objects.filter(project=project).count() == Lead.objects.filter(project=project).count()
