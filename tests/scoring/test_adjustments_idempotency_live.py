"""Two requests with one idempotency key at the same moment (PostgreSQL, threads): one adjustment, two answers."""

import threading

import pytest
from django.db import connection

from ingest.models import Event
from tests.conftest import client_for
from tests.scoring.factories import scored_lead


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_make_one_adjustment(tenant):
    lead = scored_lead(tenant.project, "adj-race", "signup", "demo_request")  # 80
    start = threading.Barrier(4)
    answers: list[tuple[int, str]] = []

    def post() -> None:
        client = client_for(tenant.owner)
        start.wait()
        try:
            response = client.post(f"/api/leads/{lead.id}/adjustments", {"points": -20, "reason": "student"},
                                   format="json", HTTP_IDEMPOTENCY_KEY="race-key-0001")  # fmt: skip
            answers.append((response.status_code, response.json()["adjustment"]["eventId"]))
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(code for code, _ in answers) == [200, 200, 200, 201]
    assert len({event_id for _, event_id in answers}) == 1
    assert Event.objects.filter(lead=lead, type=Event.Type.ADJUSTMENT).count() == 1
    lead.refresh_from_db()
    assert lead.current_score == 60
