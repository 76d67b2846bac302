"""Rule-set versions: every published change is a version; drafts are previewed and published; rollback restores."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Membership
from ingest.models import Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from scoring.models import RescoreJob, RuleSetVersion, ScoreHistory, ScoringRule
from scoring.services import lead_score, rescore_job_run
from scoring.services.fold import primary_model
from tests.accounts.factories import UserFactory
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

BASE = (timezone.now() - timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)
FOLDED = ("rule", "decay", "fit")


def scored(project, anonymous_id, *names):
    events_ingest(
        project_id=project.id,
        events=[
            CanonicalEvent(event_id=f"{anonymous_id}-{i}", name=name, anonymous_id=anonymous_id,
                           timestamp=BASE + timedelta(minutes=i))
            for i, name in enumerate(names)
        ],
    )  # fmt: skip
    return lead_score(lead_id=Lead.objects.get(project=project, anonymous_id=anonymous_id).id)


def run_jobs(project):
    for job in RescoreJob.objects.filter(project=project, status__in=["pending", "running"]).order_by("id"):
        for index in range(job.slice_count):  # every slice of the job, one after the other
            while rescore_job_run(job_id=job.id, slice_index=index):
                pass


def folded_history(lead):
    """The lead's chain of folded rows as the score under a version left them (the version number aside)."""
    rows = ScoreHistory.objects.filter(lead=lead, reason__in=FOLDED).order_by("occurred_at", "id")
    return [(r.reason, r.event_id, r.old_score, r.new_score, r.delta, r.details) for r in rows]


def rule_id(project, event_type):
    return ScoringRule.objects.get(model=primary_model(project), event_type=event_type).id


def test_every_published_change_is_a_version_with_its_author_and_note(tenant):
    assert [
        (v["number"], v["isLive"]) for v in tenant.client.get("/api/models/default/versions").json()["results"]
    ] == [(1, True)]
    page_view = rule_id(tenant.project, "page_view")
    tenant.client.patch(f"/api/rules/{page_view}", {"points": 7}, format="json")
    tenant.client.patch("/api/scoring/settings", {"hotThreshold": 40}, format="json")
    versions = tenant.client.get("/api/models/default/versions").json()["results"]
    assert [(v["number"], v["isLive"], v["author"]) for v in versions] == [
        (3, True, tenant.owner.email), (2, False, tenant.owner.email), (1, False, None),
    ]  # fmt: skip
    assert versions[1]["note"] == f"rule {page_view} changed: points"
    v2 = tenant.client.get("/api/models/default/versions/2").json()["document"]
    assert next(r for r in v2["rules"] if r["id"] == page_view)["points"] == 7
    assert v2["settings"]["hotThreshold"] == 31
    diff = tenant.client.get("/api/models/default/versions/1/diff/3").json()
    assert diff["changed"] == [{"id": page_view, "fields": {"points": {"from": 5, "to": 7}}}]
    assert diff["settings"] == {"hotThreshold": {"from": 31, "to": 40}}
    assert diff["added"] == diff["removed"] == []


def test_history_rows_cite_the_version_that_produced_them(tenant):
    lead = scored(tenant.project, "x", "page_view")
    assert set(ScoreHistory.objects.filter(lead=lead).values_list("version", flat=True)) == {1}
    tenant.client.patch(f"/api/rules/{rule_id(tenant.project, 'page_view')}", {"points": 7}, format="json")
    run_jobs(tenant.project)
    assert set(ScoreHistory.objects.filter(lead=lead, reason__in=FOLDED).values_list("version", flat=True)) == {2}


def test_a_draft_is_previewed_then_published_by_an_admin(tenant):
    scored(tenant.project, "a", "page_view", "page_view", "signup")  # 40: hot
    scored(tenant.project, "b", "page_view")  # 5: cold
    draft = tenant.client.get("/api/models/default/versions/1").json()["document"]
    for rule in draft["rules"]:
        if rule["eventType"] == "page_view":
            rule["points"] = 10
    draft["rules"] = [rule for rule in draft["rules"] if rule["eventType"] != "signup"]
    draft["rules"].append({"eventType": "webinar_joined", "points": 3})
    draft["settings"]["warmThreshold"] = 10

    member = UserFactory()
    Membership.objects.create(user=member, project=tenant.project, role=Membership.Role.MEMBER)
    as_member = client_for(member)
    saved = as_member.put("/api/models/default/draft", draft, format="json")
    assert saved.status_code == 200 and saved.json()["baseVersion"] == 1 and saved.json()["author"] == member.email
    assert ScoringRule.objects.filter(event_type="signup").exists()  # nothing live changed

    preview = as_member.post("/api/models/default/draft/preview").json()
    assert preview["leadsEvaluated"] == 2 and preview["scoreChanged"] == 2
    assert preview["stageTransitions"] == {"cold->warm": 1, "hot->warm": 1}
    assert {row["stage"]: (row["before"], row["after"]) for row in preview["distribution"]["stages"]} == {
        "cold": (1, 0), "warm": (0, 2), "hot": (1, 0), "qualified": (0, 0),
    }  # fmt: skip
    diff = tenant.client.get("/api/models/default/versions/1/diff/draft").json()
    assert [rule["eventType"] for rule in diff["removed"]] == ["signup"]
    assert [rule["eventType"] for rule in diff["added"]] == ["webinar_joined"]

    assert as_member.post("/api/models/default/draft/publish", {}, format="json").status_code == 403
    published = tenant.client.post("/api/models/default/draft/publish", {"note": "simpler"}, format="json")
    assert published.status_code == 201 and published.json()["number"] == 2 and published.json()["note"] == "simpler"
    assert tenant.client.get("/api/models/default/draft").status_code == 404
    live = {rule.event_type: rule.points for rule in ScoringRule.objects.filter(model=primary_model(tenant.project))}
    assert live["page_view"] == 10 and "signup" not in live and live["webinar_joined"] == 3
    run_jobs(tenant.project)
    assert sorted(Lead.objects.filter(project=tenant.project).values_list("current_score", "lead_stage")) == [
        (10, "warm"), (20, "warm"),
    ]  # fmt: skip
    again = tenant.client.post("/api/models/default/draft/publish", {}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "no_draft"


def test_rollback_restores_the_score_and_history_exactly_as_under_that_version(tenant):
    lead = scored(tenant.project, "x", "page_view", "signup", "pricing_page_visit", "page_view")
    under_v1 = (Lead.objects.get(id=lead.id).current_score, folded_history(lead))
    cell_v1 = Lead.objects.get(id=lead.id).matrix_cell
    signup = rule_id(tenant.project, "signup")
    tenant.client.patch(f"/api/rules/{rule_id(tenant.project, 'page_view')}", {"points": 1}, format="json")  # v2
    tenant.client.delete(f"/api/rules/{signup}")  # v3
    run_jobs(tenant.project)
    assert Lead.objects.get(id=lead.id).current_score != under_v1[0]

    # the past score, recomputed from the log without touching anything
    past = tenant.client.get(f"/api/leads/{lead.id}/score?version=1").json()
    assert past["score"] == under_v1[0] and past["version"] == 1 and past["liveVersion"] == 3
    assert past["cell"] == cell_v1
    live = tenant.client.get(f"/api/leads/{lead.id}/score").json()
    now = Lead.objects.get(id=lead.id)
    assert (live["score"], live["cell"]) == (now.current_score, now.matrix_cell)

    response = tenant.client.post("/api/models/default/versions/1/rollback", {}, format="json")
    assert (
        response.status_code == 201 and response.json()["number"] == 4 and response.json()["note"] == "rollback to v1"
    )
    assert ScoringRule.objects.get(id=signup).points == 30  # back under its own id
    run_jobs(tenant.project)
    assert (Lead.objects.get(id=lead.id).current_score, folded_history(lead)) == under_v1
    assert set(ScoreHistory.objects.filter(lead=lead, reason__in=FOLDED).values_list("version", flat=True)) == {4}
    assert RuleSetVersion.objects.get(model=primary_model(tenant.project), number=4).document == (
        RuleSetVersion.objects.get(model=primary_model(tenant.project), number=1).document
    )


def test_members_draft_but_only_admins_publish_or_roll_back(tenant):
    member = UserFactory()
    Membership.objects.create(user=member, project=tenant.project, role=Membership.Role.MEMBER)
    client = client_for(member)
    assert client.post("/api/models/default/versions/1/rollback", {}, format="json").status_code == 403
    assert client.delete("/api/models/default/draft").status_code == 204
    assert RuleSetVersion.objects.filter(model=primary_model(tenant.project)).count() == 1


def test_bad_drafts_name_the_field(tenant):
    document = tenant.client.get("/api/models/default/versions/1").json()["document"]
    bad_rule = {**document, "rules": [*document["rules"], {"eventType": "x", "points": "many"}]}
    response = tenant.client.put("/api/models/default/draft", bad_rule, format="json")
    assert response.status_code == 400 and "rules" in response.json()["error"]["fields"]
    twice = {**document, "rules": [*document["rules"], document["rules"][0]]}
    assert "rules" in tenant.client.put("/api/models/default/draft", twice, format="json").json()["error"]["fields"]
    falling = {**document, "settings": {**document["settings"], "hotThreshold": 5}}
    response = tenant.client.put("/api/models/default/draft", falling, format="json")
    assert response.status_code == 400 and "settings" in response.json()["error"]["fields"]
    assert tenant.client.get("/api/models/default/draft").status_code == 404


def test_another_projects_versions_and_drafts_are_404(tenant, other_tenant):
    other = other_tenant.client
    other.patch("/api/scoring/settings", {"hotThreshold": 40}, format="json")
    lead = scored(other_tenant.project, "theirs", "page_view")
    document = other.get("/api/models/default/versions/1").json()["document"]
    other.put("/api/models/default/draft", document, format="json")
    # the same key in one's own project is one's own model: another project's lead is the thing to reach
    assert tenant.client.get("/api/models/default/versions/2").status_code == 404
    assert tenant.client.get(f"/api/leads/{lead.id}/score?version=1").status_code == 404
    assert tenant.client.get("/api/models/default/draft").status_code == 404
    assert tenant.client.get("/api/models/nope/versions").status_code == 404
    assert other.get("/api/models/default/draft").status_code == 200


def test_an_edited_draft_keeps_the_version_it_started_from(tenant):
    document = tenant.client.get("/api/models/default/versions/1").json()["document"]
    assert tenant.client.put("/api/models/default/draft", document, format="json").json()["baseVersion"] == 1
    tenant.client.patch("/api/scoring/settings", {"hotThreshold": 40}, format="json")  # live moves on: v2
    again = tenant.client.put("/api/models/default/draft", document, format="json").json()
    assert again["baseVersion"] == 1
    diff = tenant.client.get("/api/models/default/versions/2/diff/draft").json()
    assert diff["settings"] == {"hotThreshold": {"from": 40, "to": 31}}  # publishing it would undo the live change
