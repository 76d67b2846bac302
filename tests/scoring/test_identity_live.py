"""Identity resolution with real worker processes, and a real Segment client over HTTP."""

import itertools
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import Client
from segment.analytics import Client as SegmentClient

from core.contracts import LEAD_SCORE_TASK
from ingest.models import Event, Lead
from leadpulse.celery import app as celery_app
from scoring.models import ScoreHistory
from tests.accounts.factories import project_with_owner
from tests.live import wait_until

pytestmark = pytest.mark.live


@pytest.fixture
def project_and_key(live_pipeline):
    project, _owner, key = project_with_owner(name="Identity")
    return project, key


def batch(key, messages):
    try:
        return Client().post("/v1/batch", json.dumps({"writeKey": key, "batch": messages}), content_type="text/plain")
    finally:
        connection.close()


def settled(project):
    def check():
        return not Event.objects.filter(project=project, processed_at__isnull=True).exists()

    return check


def assert_folded(lead):
    rows = list(ScoreHistory.objects.filter(lead=lead, reason="rule").order_by("occurred_at", "event__event_id"))
    assert len(rows) == Event.objects.filter(lead=lead).count()
    for previous, row in itertools.pairwise(rows):
        assert row.old_score == previous.new_score
    assert rows[-1].new_score == lead.current_score
    assert ScoreHistory.objects.filter(lead=lead).latest("id").new_score == lead.current_score


def test_many_devices_identifying_as_one_person_at_once_merge_without_losing_events(project_and_key):
    project, key = project_and_key
    assert (
        batch(
            key, [{"type": "identify", "anonymousId": "crm", "traits": {"email": "vip@corp.io"}, "messageId": "known"}]
        ).status_code
        == 200
    )
    wait_until(settled(project), message="the known lead")

    def device(n):
        pages = [{"type": "page", "anonymousId": f"dev-{n}", "messageId": f"dev-{n}-p{i}"} for i in range(15)]
        who = {
            "type": "identify",
            "anonymousId": f"dev-{n}",
            "messageId": f"dev-{n}-id",
            "traits": {"email": "VIP@corp.io"},
        }
        return batch(key, [*pages, who]).status_code

    def known_activity(n):
        return batch(
            key, [{"type": "track", "event": "email_open", "anonymousId": "crm", "messageId": f"crm-{n}"}]
        ).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(device, range(10))) + list(pool.map(known_activity, range(10)))
    assert set(statuses) == {200}
    # redundant tasks for every lead race the merges
    for lead_id in Lead.objects.filter(project=project).values_list("id", flat=True):
        celery_app.send_task(LEAD_SCORE_TASK, kwargs={"lead_id": lead_id})

    wait_until(settled(project), timeout=120, message="merges and scoring to finish")
    (survivor,) = Lead.objects.filter(project=project, merged_into__isnull=True)
    assert survivor.anonymous_id == "crm" and survivor.email == "vip@corp.io"
    assert Event.objects.filter(project=project).count() == Event.objects.filter(lead=survivor).count() == 171
    assert survivor.current_score == 10 * 15 * 5 + 10 * 10
    assert_folded(survivor)
    assert ScoreHistory.objects.filter(lead=survivor, reason="merge").count() == 10


def test_two_devices_identifying_a_new_email_at_once_end_as_one_lead(project_and_key):
    project, key = project_and_key
    messages = [
        [
            {"type": "track", "event": "signup", "anonymousId": f"twin-{n}", "messageId": f"t{n}"},
            {"type": "identify", "anonymousId": f"twin-{n}", "userId": "new-user", "messageId": f"i{n}"},
        ]
        for n in range(6)
    ]
    with ThreadPoolExecutor(max_workers=6) as pool:
        assert set(pool.map(lambda m: batch(key, m).status_code, messages)) == {200}

    wait_until(settled(project), timeout=60, message="identity resolution")
    (lead,) = Lead.objects.filter(project=project, merged_into__isnull=True)
    assert lead.user_id == "new-user" and lead.current_score == 6 * 30
    assert_folded(lead)


def test_segment_python_client_events_arrive_dedupe_and_score(project_and_key, live_server):
    project, key = project_and_key
    errors = []
    client = SegmentClient(
        write_key=key,
        host=live_server.url,
        sync_mode=True,
        gzip=True,
        on_error=lambda error, items: errors.append(error),
    )

    client.page(
        anonymous_id="seg-anon", name="Pricing", properties={"url": "https://shop.test/pricing"}, message_id="seg-page"
    )
    client.track(anonymous_id="seg-anon", event="demo_request", message_id="seg-demo")
    client.track(anonymous_id="seg-anon", event="demo_request", message_id="seg-demo")  # a retry
    client.identify(
        user_id="seg-user",
        anonymous_id="seg-anon",
        traits={"email": "seg@corp.io", "name": "Seg"},
        message_id="seg-identify",
    )
    client.flush()

    assert errors == []
    wait_until(settled(project), message="the Segment client's events to be scored")
    lead = Lead.objects.get(project=project, merged_into__isnull=True)
    assert (lead.user_id, lead.email, lead.name) == ("seg-user", "seg@corp.io", "Seg")
    assert sorted(Event.objects.filter(lead=lead).values_list("name", flat=True)) == [
        "demo_request",
        "identify",
        "page_view",
    ]
    assert lead.current_score == 55
    assert_folded(lead)
