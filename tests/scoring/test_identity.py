"""Identity resolution and merges through the scoring service, on PostgreSQL."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ingest.models import Event, Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from scoring import engine
from scoring.models import ScoreHistory
from scoring.services import lead_score
from tests.ingest.factories import EventFactory

pytestmark = pytest.mark.django_db
T0 = timezone.now() - timedelta(days=1)


def send(project, *events):
    """events: dicts of CanonicalEvent fields; `m` = minutes after T0."""
    events_ingest(
        project_id=project.id,
        events=[
            CanonicalEvent(
                event_id=e["id"],
                name=e.get("name", e.get("type", "track") if e.get("type") in ("identify", "alias", "group") else "x"),
                type=e.get("type", "track"),
                anonymous_id=e.get("anon", ""),
                user_id=e.get("user", ""),
                properties=e.get("props", {}),
                timestamp=T0 + timedelta(minutes=e["m"]),
            )
            for e in events
        ],
    )


def score_all(project):
    for lead_id in Lead.objects.filter(project=project).order_by("id").values_list("id", flat=True):
        lead_score(lead_id=lead_id)


def live_leads(project):
    return list(Lead.objects.filter(project=project, merged_into__isnull=True))


def test_identify_promotes_an_anonymous_lead_when_nobody_owns_the_email(tenant):
    send(
        tenant.project,
        {"id": "1", "anon": "dev-1", "name": "page_view", "m": 1},
        {
            "id": "2",
            "anon": "dev-1",
            "type": "identify",
            "user": "u-1",
            "m": 2,
            "props": {
                "email": " Ada@Example.COM ",
                "firstName": "Ada",
                "lastName": "L",
                "company": {"name": "Acme"},
                "plan": "pro",
            },
        },
    )
    score_all(tenant.project)

    (lead,) = live_leads(tenant.project)
    assert (lead.user_id, lead.email, lead.name, lead.company) == ("u-1", "ada@example.com", "Ada L", "Acme")
    assert lead.traits == {"plan": "pro"}
    assert lead.current_score == 5


def test_the_sdk_identify_event_with_properties_email_merges_like_segment(tenant):
    # a known lead owns the email; a new device browses and then identifies with it
    send(
        tenant.project,
        {"id": "k1", "anon": "crm-1", "type": "identify", "m": 1, "props": {"email": "b@x.io"}},
        {"id": "k2", "anon": "crm-1", "name": "demo_request", "m": 2},
    )
    score_all(tenant.project)
    known = Lead.objects.get(anonymous_id="crm-1")
    assert known.current_score == 50

    send(
        tenant.project,
        {"id": "d1", "anon": "browser", "name": "page_view", "m": 0},
        {"id": "d2", "anon": "browser", "name": "signup", "m": 3},
        {"id": "d3", "anon": "browser", "name": "identify", "type": "identify", "m": 4, "props": {"email": "B@x.io"}},
    )
    anon = Lead.objects.get(anonymous_id="browser")
    lead_score(lead_id=anon.id)

    anon.refresh_from_db()
    known.refresh_from_db()
    assert anon.merged_into_id == known.id and anon.current_score == 0
    assert known.current_score == 85  # 5 + 50 + 30, refolded in timestamp order
    assert Event.objects.filter(lead=known).count() == 5 and not Event.objects.filter(lead=anon).exists()
    # the fold chain covers every event once, the audit row records the merge
    rules = ScoreHistory.objects.filter(lead=known, reason="rule").order_by("occurred_at")
    assert [r.event.event_id for r in rules] == ["d1", "k1", "k2", "d2", "d3"]
    merge = ScoreHistory.objects.get(lead=known, reason="merge")
    assert (merge.old_score, merge.new_score) == (50, 85)
    assert merge.details["mergedLeadId"] == anon.id and merge.details["eventsMoved"] == 3
    assert ScoreHistory.objects.filter(lead=known).latest("id").new_score == known.current_score


def test_later_events_for_the_merged_anonymous_id_land_on_the_survivor(tenant):
    send(tenant.project, {"id": "k", "anon": "crm", "type": "identify", "user": "u", "m": 1})
    send(tenant.project, {"id": "a", "anon": "dev", "type": "identify", "user": "u", "m": 2})
    score_all(tenant.project)
    survivor = Lead.objects.get(anonymous_id="crm")

    send(tenant.project, {"id": "later", "anon": "dev", "name": "signup", "m": 3})
    assert Event.objects.get(event_id="later").lead_id == survivor.id


def test_events_attached_to_a_lead_just_before_it_merged_are_handed_on(tenant):
    send(
        tenant.project,
        {"id": "k", "anon": "crm", "type": "identify", "user": "u", "m": 1},
        {"id": "a", "anon": "dev", "type": "identify", "user": "u", "m": 2},
    )
    score_all(tenant.project)
    dev = Lead.objects.get(anonymous_id="dev")
    # an ingest that looked the lead up before the merge committed
    EventFactory(lead=dev, event_id="straggler", name="signup", timestamp=T0 + timedelta(minutes=5))

    lead_score(lead_id=dev.id)
    lead_score(lead_id=dev.merged_into_id)

    assert Event.objects.get(event_id="straggler").lead_id == dev.merged_into_id
    assert Lead.objects.get(pk=dev.merged_into_id).current_score == 30


def test_alias_merges_previous_id_into_user_id(tenant):
    send(
        tenant.project,
        {"id": "u", "user": "user-7", "name": "demo_request", "m": 1},
        {"id": "p", "anon": "old-anon", "name": "signup", "m": 2},
    )
    score_all(tenant.project)
    send(tenant.project, {"id": "al", "type": "alias", "anon": "old-anon", "user": "user-7", "m": 3})
    score_all(tenant.project)

    (lead,) = live_leads(tenant.project)
    assert lead.user_id == "user-7" and lead.current_score == 80


def test_track_with_a_user_id_on_an_unknown_device_links_the_device(tenant):
    send(tenant.project, {"id": "k", "user": "u5", "name": "signup", "m": 1})
    score_all(tenant.project)
    send(tenant.project, {"id": "n", "anon": "new-device", "user": "u5", "name": "download", "m": 2})
    score_all(tenant.project)
    (lead,) = live_leads(tenant.project)
    assert lead.current_score == 45


def test_group_sets_the_company(tenant):
    send(
        tenant.project, {"id": "g", "anon": "a", "type": "group", "m": 1, "props": {"name": "Initech", "groupId": "g1"}}
    )
    score_all(tenant.project)
    lead = Lead.objects.get(anonymous_id="a")
    assert lead.company == "Initech" and lead.traits["company"]["groupId"] == "g1"


def test_an_identified_device_is_not_merged_into_another_user(tenant):
    send(
        tenant.project,
        {"id": "1", "anon": "shared-pc", "type": "identify", "user": "alice", "m": 1},
        {"id": "2", "anon": "bob-phone", "type": "identify", "user": "bob", "m": 1},
    )
    score_all(tenant.project)
    send(tenant.project, {"id": "3", "anon": "shared-pc", "type": "identify", "user": "bob", "m": 2})
    score_all(tenant.project)
    assert len(live_leads(tenant.project)) == 2


def test_merges_never_cross_projects(tenant, other_tenant):
    send(other_tenant.project, {"id": "o", "anon": "theirs", "type": "identify", "m": 1, "props": {"email": "x@y.io"}})
    send(tenant.project, {"id": "m", "anon": "mine", "type": "identify", "m": 1, "props": {"email": "x@y.io"}})
    score_all(other_tenant.project)
    score_all(tenant.project)
    assert Lead.objects.filter(merged_into__isnull=False).count() == 0


def test_the_api_answers_an_old_lead_id_with_the_survivor(tenant):
    send(
        tenant.project,
        {"id": "k", "anon": "crm", "type": "identify", "user": "u", "m": 1},
        {"id": "a", "anon": "dev", "type": "identify", "user": "u", "m": 2},
    )
    score_all(tenant.project)
    old = Lead.objects.get(anonymous_id="dev")
    body = tenant.client.get(f"/api/leads/{old.id}").json()
    assert body["id"] == old.merged_into_id and body["anonymousId"] == "crm"
    assert [r["anonymousId"] for r in tenant.client.get("/api/leads").json()["results"]] == ["crm"]
    by_device = tenant.client.get("/api/leads?anonymousId=dev").json()["results"]
    assert [r["id"] for r in by_device] == [old.merged_into_id]


def test_create_lead_by_hand(tenant):
    created = tenant.client.post(
        "/api/leads", {"anonymousId": "hand-1", "email": "H@x.io", "name": "Hand"}, format="json"
    )
    again = tenant.client.post("/api/leads", {"anonymousId": "hand-1"}, format="json")
    bad = tenant.client.post("/api/leads", {"email": "nope"}, format="json")
    assert created.status_code == 201 and created.json()["email"] == "h@x.io"
    assert again.status_code == 200 and again.json()["id"] == created.json()["id"]
    assert bad.status_code == 400 and {"anonymousId", "email"} <= set(bad.json()["error"]["fields"])


def test_identity_fold_is_latest_wins():
    calls = [
        engine.IdentityCall("identify", "", {"email": "a@x.io", "name": "A", "tier": 1}),
        engine.IdentityCall("track", "u1", {}),
        engine.IdentityCall("identify", "", {"email": "not-an-email", "tier": 2}),
        engine.IdentityCall("group", "", {"name": "Co", "groupId": "g"}),
    ]
    identity = engine.identity_fold(calls)
    assert identity == engine.Identity(
        user_id="u1",
        email="a@x.io",
        name="A",
        company="Co",
        traits={"tier": 2, "company": {"name": "Co", "groupId": "g"}},
    )


def test_an_identify_for_another_user_does_not_overwrite_an_identified_lead(tenant):
    send(tenant.project, {"id": "1", "anon": "pc", "type": "identify", "user": "u1", "m": 1,
                          "props": {"email": "a@x.io", "name": "Alice"}})  # fmt: skip
    score_all(tenant.project)
    send(tenant.project, {"id": "2", "anon": "pc", "type": "identify", "user": "u2", "m": 2,
                          "props": {"email": "b@x.io", "name": "Bob"}})  # fmt: skip
    score_all(tenant.project)
    lead = Lead.objects.get(anonymous_id="pc")
    assert (lead.user_id, lead.email, lead.name) == ("u1", "a@x.io", "Alice")


def test_an_alias_seen_before_its_previous_id_still_merges_later_events(tenant):
    send(tenant.project, {"id": "k", "user": "u1", "name": "signup", "m": 1})
    send(tenant.project, {"id": "al", "type": "alias", "anon": "anon-9", "user": "u1", "m": 2})
    score_all(tenant.project)
    send(tenant.project, {"id": "later", "anon": "anon-9", "name": "download", "m": 3})
    score_all(tenant.project)
    (lead,) = live_leads(tenant.project)
    assert lead.user_id == "u1" and lead.current_score == 45
    assert Event.objects.get(event_id="later").lead_id == lead.id


def test_search_with_non_ascii_digits_and_nul_does_not_fail(tenant):
    for term in ("²", "١٢", "a\x00b", "9" * 40):
        assert tenant.client.get("/api/leads", {"search": term}).status_code == 200


def test_an_identify_stored_while_its_lead_is_being_scored_is_resolved_not_just_folded(tenant, monkeypatch):
    # given a lead with a page view, and a scoring task that has just looked for identity calls (none yet)
    from scoring.services import leads

    send(tenant.project, {"id": "p", "anon": "late", "name": "page_view", "m": 1})
    lead = Lead.objects.get(project=tenant.project, anonymous_id="late")
    resolve = leads.lead_identify

    def identify_then_an_identify_arrives(*, lead_id):
        survivor = resolve(lead_id=lead_id)
        if not Event.objects.filter(event_id="i").exists():  # ingest commits it before the task folds
            send(tenant.project, {"id": "i", "anon": "late", "type": "identify", "user": "u-late", "m": 2,
                                  "props": {"email": "late@corp.io"}})  # fmt: skip
        return survivor

    monkeypatch.setattr(leads, "lead_identify", identify_then_an_identify_arrives)

    # when the task goes on to fold the lead
    lead_score(lead_id=lead.id)

    # then the identify is applied (was: folded as a plain event, the lead never learned who it is)
    lead.refresh_from_db()
    assert (lead.user_id, lead.email) == ("u-late", "late@corp.io")
    assert not Event.objects.filter(lead=lead, processed_at__isnull=True).exists()


@pytest.mark.parametrize("score", ["batch", "lead"])
def test_an_identify_stored_after_a_batch_resolved_its_lead_is_resolved_too_before_the_fold(tenant, monkeypatch, score):
    # given an identified lead with an identify pending, and a batch that has just resolved it
    from scoring.services import batch

    send(tenant.project, {"id": "p", "anon": "again", "name": "page_view", "m": 1},
         {"id": "i1", "anon": "again", "type": "identify", "user": "u-again", "m": 2,
          "props": {"email": "old@corp.io"}})  # fmt: skip
    lead = Lead.objects.get(project=tenant.project, anonymous_id="again")
    resolve = batch.lead_identify

    def identify_then_another_identify_arrives(*, lead_id):
        survivor = resolve(lead_id=lead_id)
        if not Event.objects.filter(event_id="i2").exists():  # ingest commits it before the batch folds
            send(tenant.project, {"id": "i2", "anon": "again", "type": "identify", "user": "u-again", "m": 3,
                                  "props": {"email": "new@corp.io"}})  # fmt: skip
        return survivor

    monkeypatch.setattr(batch, "lead_identify", identify_then_another_identify_arrives)

    # when the batch (or the single-lead task, a batch of one) folds the lead
    if score == "batch":
        result = batch.leads_score(lead_ids=[lead.id])
        assert (result.scored, result.events, result.more) == (1, 3, set())
    else:
        lead_score(lead_id=lead.id)

    # then the second identify is applied too (was: the lead counted as resolved, the identify folded as an event)
    lead.refresh_from_db()
    assert (lead.user_id, lead.email) == ("u-again", "new@corp.io")
    assert not Event.objects.filter(lead=lead, processed_at__isnull=True).exists()
