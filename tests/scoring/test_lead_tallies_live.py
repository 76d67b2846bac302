"""Lead tallies with real worker processes: concurrent batches, merges, erasures and a re-score keep them exact."""

import threading

import pytest
from django.db import connection

from ingest.lead_tallies import STAGES, lead_tallies, lead_tallies_drift
from ingest.models import Event, Lead
from scoring.models import RescoreJob, ScoringRule
from tests.accounts.factories import project_with_owner
from tests.conftest import client_for
from tests.live import wait_until
from tests.scoring.test_batch_live import (  # noqa: F401 (fixtures)
    all_scored,
    mixed_backlog,
    post,
    small_batch_workers,
    small_batches,
)

pytestmark = pytest.mark.live


def assert_exact(project) -> dict[str, int]:
    """The tallies equal a GROUP BY over the live leads; returns them."""
    assert lead_tallies_drift(project_id=project.id) == {}
    return lead_tallies(project_id=project.id)


def test_tallies_equal_a_count_of_the_leads_after_concurrent_batches_merges_erasures_and_a_rescore(small_batches):  # noqa: F811
    # given a backlog over 60 devices and a known lead, stored while no worker runs, and another project
    project, owner, key = project_with_owner(name="Tallies")
    other, _other_owner, other_key = project_with_owner(name="Tallies elsewhere")
    small_batches.stop()
    known = {"type": "identify", "anonymousId": "crm", "traits": {"email": "ann@corp.io"}, "messageId": "known"}
    post("/v1/batch", {"writeKey": key, "batch": [known]}, key)
    backlog = mixed_backlog("t", leads=60, events=900, seed=5)
    for start in range(0, len(backlog), 300):
        post("/api/events/batch", {"events": backlog[start : start + 300]}, key)
    post("/api/events/batch", {"events": mixed_backlog("o", leads=10, events=100, seed=6)}, other_key)

    # when two worker processes (x2) score it in batches of 5 leads while devices identify as her
    small_batches.start()
    for n in range(0, 60, 6):
        message = {"type": "identify", "anonymousId": f"t{n}", "traits": {"email": "ANN@corp.io"}, "messageId": f"w{n}"}
        post("/v1/batch", {"writeKey": key, "batch": [message]}, key)
    wait_until(all_scored(project), timeout=180, message="scoring and merges to settle")
    wait_until(all_scored(other), timeout=60, message="the other project")
    small_batches.wait_idle(timeout=120)

    # then the tallies are a count of the live leads, in several stages, with the merged devices out
    tallies = assert_exact(project)
    assert_exact(other)
    merged = Lead.objects.filter(project=project, merged_into__isnull=False).count()
    assert merged >= 5
    assert sum(tallies[stage] for stage in STAGES) == Lead.objects.filter(project=project).count() - merged
    assert sum(1 for stage in STAGES if tallies[stage]) >= 3

    # when leads are erased while new events for other leads are scored
    client = client_for(owner)
    erased = list(
        Lead.objects.filter(project=project, merged_into__isnull=True)
        .exclude(anonymous_id="crm")
        .order_by("-current_score")
        .values_list("id", flat=True)[:4]
    )
    more = mixed_backlog("u", leads=30, events=300, seed=8)
    sender = threading.Thread(target=lambda: post("/api/events/batch", {"events": more}, key))
    sender.start()
    for lead_id in erased:
        assert client.delete(f"/api/leads/{lead_id}").status_code == 204
        connection.close()
    sender.join()
    wait_until(all_scored(project), timeout=120, message="the new events")
    small_batches.wait_idle(timeout=120)

    # then they are exact again
    assert not Lead.objects.filter(id__in=erased).exists()
    assert_exact(project)

    # when a rule change re-scores every lead on the workers while more events arrive
    rule = ScoringRule.objects.get(project=project, event_type="page_view")
    assert client.patch(f"/api/rules/{rule.id}", {"points": 35}, format="json").status_code == 200
    post("/api/events/batch", {"events": mixed_backlog("v", leads=20, events=200, seed=9)}, key)
    job = RescoreJob.objects.filter(project=project).latest("id")
    wait_until(lambda: RescoreJob.objects.get(pk=job.pk).status == "succeeded", timeout=180, message="the re-score")
    wait_until(all_scored(project), timeout=120, message="the events sent during the re-score")
    small_batches.wait_idle(timeout=120)

    # then the tallies follow every move, and the other project's never moved
    after = assert_exact(project)
    assert after != tallies
    assert after["qualified"] > tallies["qualified"]
    assert not Event.objects.filter(project=project, processed_at__isnull=True).exists()
    assert_exact(other)
