"""Per-day and per-name event rollups: exact under retries, merges and erasure; the answers they replace."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

import ingest.views
import leadpulse.views
import scoring.api.reports
from ingest.models import Event, EventName, EventRollup, Lead
from ingest.rollups import events_mark_processed, rollups_counted, rollups_drift, rollups_rebuild, rollups_subtract
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from scoring.services import lead_erase, lead_score
from tests.ingest.rollup_checks import dashboard_from_events, event_names_from_events, normalised, rollup_problems
from tests.live import wait_until

pytestmark = pytest.mark.django_db


def send(project, anonymous_id, *events, type="track", **fields):
    """events: (event id, name, timestamp); stored by the real ingest service, not scored."""
    events_ingest(
        project_id=project.id,
        events=[
            CanonicalEvent(event_id=eid, name=name, type=type, anonymous_id=anonymous_id, timestamp=ts, **fields)
            for eid, name, ts in events
        ],
    )
    return Lead.objects.get(project=project, anonymous_id=anonymous_id)


def score(project):
    for lead_id in Lead.objects.filter(project=project).order_by("id").values_list("id", flat=True):
        lead_score(lead_id=lead_id)


def rollups(project):
    days = EventRollup.objects.filter(project=project).values_list("day", "name", "count")
    return (
        {(day, name): n for day, name, n in days},
        dict(EventName.objects.filter(project=project).values_list("name", "count")),
    )


NOW = timezone.now()


def test_scoring_counts_each_event_once_however_often_a_batch_is_retried(tenant):
    # given events over three days and two names, scored
    lead = send(
        tenant.project, "a",
        ("1", "page_view", NOW - timedelta(days=2)), ("2", "page_view", NOW - timedelta(days=2)),
        ("3", "signup", NOW - timedelta(days=1)), ("4", "page_view", NOW),
    )  # fmt: skip
    score(tenant.project)
    counted = rollups(tenant.project)
    day = lambda delta: (NOW - timedelta(days=delta)).astimezone(UTC).date()  # noqa: E731
    assert counted == (
        {(day(2), "page_view"): 2, (day(1), "signup"): 1, (day(0), "page_view"): 1},
        {"page_view": 3, "signup": 1},
    )

    # when a batch marking the same events runs again (a redelivered task, a second worker)
    pks = list(Event.objects.filter(lead=lead).values_list("id", flat=True))
    assert events_mark_processed(event_pks=pks, project_ids={tenant.project.id}, processed_at=timezone.now()) == 0
    score(tenant.project)

    # then nothing is counted twice
    assert rollups(tenant.project) == counted
    assert rollup_problems(tenant.project) == []


def test_days_are_utc_days(tenant):
    midnight = datetime.combine(NOW.astimezone(UTC).date(), datetime.min.time(), tzinfo=UTC)
    send(
        tenant.project, "a",
        ("late", "page_view", midnight - timedelta(microseconds=1)), ("early", "page_view", midnight),
    )  # fmt: skip
    score(tenant.project)

    by_day, _ = rollups(tenant.project)
    assert by_day == {(midnight.date() - timedelta(days=1), "page_view"): 1, (midnight.date(), "page_view"): 1}
    assert rollup_problems(tenant.project) == []  # the answers cut days where a count over the events does


def test_unscored_events_count_before_scoring_gets_to_them(tenant):
    # given events stored but not scored yet (and a scored one)
    send(tenant.project, "a", ("1", "page_view", NOW - timedelta(days=3)))
    score(tenant.project)
    send(tenant.project, "b", ("2", "brand_new", NOW), ("3", "page_view", NOW - timedelta(days=3)))

    # then the dashboards already count them: the rollups plus the backlog
    assert Event.objects.filter(project=tenant.project, processed_at__isnull=True).count() == 2
    assert rollups(tenant.project)[1] == {"page_view": 1}
    assert rollup_problems(tenant.project) == []
    assert "brand_new" in event_names_from_events(project=tenant.project)

    score(tenant.project)
    assert rollups(tenant.project)[1] == {"page_view": 2, "brand_new": 1}
    assert rollup_problems(tenant.project) == []


def test_a_merge_moves_scored_events_without_counting_them_twice(tenant):
    # given a known lead and a device, both scored
    send(tenant.project, "crm", ("k1", "identify", NOW - timedelta(days=2)), type="identify", user_id="u-1")
    send(tenant.project, "crm", ("k2", "demo_request", NOW - timedelta(days=2)))
    device = send(tenant.project, "dev", ("d1", "page_view", NOW - timedelta(days=1)), ("d2", "page_view", NOW))
    score(tenant.project)
    before = rollups(tenant.project)

    # when the device identifies as the known user: its scored events move and are folded again
    send(tenant.project, "dev", ("d3", "identify", NOW), type="identify", user_id="u-1")
    score(tenant.project)

    device.refresh_from_db()
    assert device.merged_into is not None
    assert Event.objects.filter(lead=device.merged_into).count() == 5
    assert rollups(tenant.project)[1] == {**before[1], "identify": 2}
    assert rollup_problems(tenant.project) == []


def test_erasing_a_lead_subtracts_exactly_its_events_and_leaves_no_name_behind(tenant):
    # given two leads; one alone sent an event name, and has a merged device and an unscored event
    send(tenant.project, "keep", ("k1", "page_view", NOW), ("k2", "signup", NOW - timedelta(days=4)))
    send(tenant.project, "gone", ("g0", "identify", NOW - timedelta(days=5)), type="identify", user_id="u-9")
    send(tenant.project, "gone", ("g1", "page_view", NOW), ("g2", "visited_clinic_page", NOW - timedelta(days=4)))
    send(tenant.project, "gone-device", ("g3", "page_view", NOW - timedelta(days=9)))
    send(tenant.project, "gone-device", ("g4", "identify", NOW), type="identify", user_id="u-9")
    score(tenant.project)
    gone = Lead.objects.get(project=tenant.project, anonymous_id="gone")
    assert Lead.objects.filter(merged_into=gone).count() == 1
    send(tenant.project, "gone", ("g5", "page_view", NOW))  # not scored: never counted

    # when the lead is erased
    lead_erase(lead=gone)

    # then the counts lose exactly its events, and its own event name is gone everywhere
    assert rollups(tenant.project)[1] == {"page_view": 1, "signup": 1}
    assert not EventRollup.objects.filter(name="visited_clinic_page").exists()
    assert not EventName.objects.filter(name="visited_clinic_page").exists()
    assert rollup_problems(tenant.project) == []


def test_rebuild_recounts_what_the_migration_backfills(tenant, other_tenant):
    # given scored events whose rollups are missing (stored before the rollups existed) or wrong
    send(tenant.project, "a", ("1", "page_view", NOW - timedelta(days=40)), ("2", "signup", NOW))
    send(other_tenant.project, "b", ("3", "page_view", NOW))
    score(tenant.project)
    score(other_tenant.project)
    EventRollup.objects.filter(project=tenant.project, name="signup").delete()
    EventName.objects.filter(project=other_tenant.project).update(count=7)
    assert rollups_drift(project_id=tenant.project.id) == {f"{NOW.astimezone(UTC).date()} signup": -1}
    assert rollups_drift(project_id=other_tenant.project.id) == {"* page_view": 6}
    with pytest.raises(CommandError):
        call_command("rollups_rebuild", "--check")

    # when they are rebuilt (what migration 0004 runs)
    rollups_rebuild()

    # then they equal a count of the processed events
    call_command("rollups_rebuild", "--check")
    assert rollup_problems(tenant.project) == [] and rollup_problems(other_tenant.project) == []


@pytest.mark.parametrize("path", ["/", "/events/", "/api/analytics/dashboard"])
def test_pages_and_api_answer_what_the_event_scans_answered(path, tenant, monkeypatch):
    # given scored and unscored events over 40 days, 14 names (two tie at the top-12 cut), a merge
    names = [f"event_{n:02d}" for n in range(14)]
    for n, name in enumerate(names):
        events = [(f"{name}-{i}", name, NOW - timedelta(days=3 * i, hours=n)) for i in range(1 + n % 12)]
        send(tenant.project, f"lead-{n % 5}", *events)
    send(tenant.project, "crm", ("c1", "identify", NOW - timedelta(days=1)), type="identify", user_id="u-1")
    score(tenant.project)
    send(tenant.project, "lead-2", ("i1", "identify", NOW), type="identify", user_id="u-1")
    send(tenant.project, "lead-3", ("late-1", "event_13", NOW - timedelta(days=2)), ("late-2", "fresh", NOW))
    session = Client()
    session.force_login(tenant.owner)
    api = tenant.client

    def get():
        response = (api if path.startswith("/api/") else session).get(path)
        assert response.status_code == 200
        return response.json() if path.startswith("/api/") else normalised(response.content.decode())

    # when the page is rendered from the rollups, and again from scans of the events table
    new = get()
    monkeypatch.setattr(leadpulse.views, "project_dashboard", dashboard_from_events)
    monkeypatch.setattr(scoring.api.reports, "project_dashboard", dashboard_from_events)
    monkeypatch.setattr(ingest.views.selectors, "event_names_for_project", event_names_from_events)
    old = get()

    # then they are the same
    assert new == old
    assert Event.objects.filter(project=tenant.project, processed_at__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
def test_a_transaction_that_writes_rollups_twice_does_not_deadlock_with_a_scoring_batch(tenant):
    # given scored events named a and b (their rollup rows exist), and three unscored ones
    project = tenant.project
    send(project, "x", ("a1", "a", NOW), ("b1", "b", NOW))
    score(project)
    send(project, "x", ("b2", "b", NOW))
    send(project, "y", ("a3", "a", NOW), ("b3", "b", NOW))
    pk = dict(Event.objects.filter(project=project).values_list("event_id", "id"))
    first_marked, second_pid, errors = threading.Event(), [], []

    def waiting(pid: int) -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
            return cursor.fetchone()[0] == "Lock"

    def merge_like():
        """Like a merge: its fold marks (row b), then it subtracts what it handed on unprocessed (row a)."""
        try:
            with transaction.atomic():
                events_mark_processed(event_pks=[pk["b2"]], project_ids={project.id}, processed_at=timezone.now())
                first_marked.set()
                wait_until(lambda: second_pid and waiting(second_pid[0]), timeout=10, message="the batch to queue")
                counted = rollups_counted(events=Event.objects.filter(id=pk["a1"]))
                Event.objects.filter(id=pk["a1"]).update(processed_at=None)
                rollups_subtract(counted=counted)
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    def batch():
        """A scoring batch marking an a and a b: it takes row a, then row b."""
        try:
            first_marked.wait(timeout=10)
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    second_pid.append(cursor.fetchone()[0])
                marked = events_mark_processed(
                    event_pks=[pk["a3"], pk["b3"]], project_ids={project.id}, processed_at=timezone.now()
                )
                assert marked == 2
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    # when they run at once, the batch starting between the other's two writes
    threads = [threading.Thread(target=merge_like), threading.Thread(target=batch)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # then neither is a deadlock victim, and the counts are exact
    assert errors == []
    assert rollup_problems(project) == []


def test_deletes_in_the_admin_take_their_events_out_of_the_counts(tenant, admin_client):
    # given scored events of two leads
    send(tenant.project, "a", ("a1", "page_view", NOW), ("a2", "only_a", NOW - timedelta(days=1)))
    send(tenant.project, "b", ("b1", "page_view", NOW), ("b2", "signup", NOW), ("b3", "signup", NOW))
    score(tenant.project)
    lead = Lead.objects.get(project=tenant.project, anonymous_id="a")
    signups = list(Event.objects.filter(name="signup").values_list("id", flat=True))

    # when an admin deletes a lead (its events cascade) and, in bulk, two events
    assert admin_client.post(f"/admin/ingest/lead/{lead.id}/delete/", {"post": "yes"}).status_code == 302
    response = admin_client.post(
        "/admin/ingest/event/", {"action": "delete_selected", "_selected_action": signups, "post": "yes"}
    )
    assert response.status_code == 302

    # then the counts lose exactly those events
    assert list(Event.objects.filter(project=tenant.project).values_list("event_id", flat=True)) == ["b1"]
    assert rollups(tenant.project)[1] == {"page_view": 1}
    assert rollup_problems(tenant.project) == []
