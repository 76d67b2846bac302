"""The rules, settings, re-score job, preview, breakdown and intelligence endpoints against PostgreSQL."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Membership
from ingest.models import Event, Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest, lead_create
from scoring.models import RescoreJob, ScoreHistory, ScoringRule
from scoring.services import lead_score
from scoring.services.fold import primary_model
from tests.accounts.factories import UserFactory
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

# Mid-morning two days ago: events minutes apart fall on one UTC day and well inside the decay grace period.
BASE = (timezone.now() - timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)
PRICING = {
    "name": "Pricing view",
    "eventType": "page_view",
    "conditions": [{"path": "properties.url", "op": "contains", "value": "/pricing"}],
    "points": 15,
    "maxPerDay": 1,
}
VP_FIT = {
    "name": "VP",
    "kind": "fit",
    "conditions": [{"path": "traits.title", "op": "contains", "value": "VP"}],
    "points": 20,
}
RULE_FIELDS = {
    "id", "model", "name", "kind", "eventType", "conditions", "points", "maxPerDay", "maxPerLead", "maxPoints",
    "window", "isActive", "createdAt", "updatedAt",
}  # fmt: skip
SETTINGS = {
    "warmThreshold": 11,
    "hotThreshold": 31,
    "qualifiedThreshold": 60,
    "maxScore": 10000,
    "decayEnabled": True,
    "decayRatePercent": 5.0,
    "decayGraceDays": 7,
}


def scored_lead(project, anonymous_id, *events, at=BASE, **fields):
    """events: (name, minutes after `at`, properties); `fields` are set on the lead before it is scored."""
    if events:
        events_ingest(
            project_id=project.id,
            events=[
                CanonicalEvent(
                    event_id=f"{anonymous_id}-{i}",
                    name=name,
                    anonymous_id=anonymous_id,
                    timestamp=at + timedelta(minutes=minutes),
                    properties=properties,
                )
                for i, (name, minutes, properties) in enumerate(events)
            ],
        )
    else:
        lead_create(project_id=project.id, anonymous_id=anonymous_id)
    lead = Lead.objects.get(project=project, anonymous_id=anonymous_id)
    if fields:
        Lead.objects.filter(pk=lead.pk).update(**fields)
    return lead_score(lead_id=lead.id)


def with_conditions(*conditions):
    return {**PRICING, "conditions": [{"path": path, "op": op, "value": value} for path, op, value in conditions]}


def rule_row(project, data) -> ScoringRule:
    """A rule stored directly (no re-score job), from the API's camelCase shape."""
    return ScoringRule.objects.create(
        project=project,
        model=primary_model(project),
        name=data.get("name", ""),
        kind=data.get("kind", "engagement"),
        event_type=data.get("eventType", ""),
        conditions=data.get("conditions", []),
        points=data["points"],
        max_per_day=data.get("maxPerDay"),
        is_active=data.get("isActive", True),
    )


def member_client(project):
    member = UserFactory()
    Membership.objects.create(user=member, project=project, role=Membership.Role.MEMBER)
    return client_for(member)


def snapshot(project):
    """Everything a write could touch."""
    return (
        list(ScoringRule.objects.filter(project=project).order_by("id").values()),
        list(Lead.objects.filter(project=project).order_by("id").values()),
        list(ScoreHistory.objects.filter(project=project).order_by("id").values()),
        list(Event.objects.filter(project=project).order_by("id").values("id", "lead_id", "processed_at")),
        list(RescoreJob.objects.filter(project=project).order_by("id").values()),
        {field: getattr(primary_model(project), field) for field in (
            "warm_threshold", "hot_threshold", "qualified_threshold", "max_score", "decay_enabled",
            "decay_rate_percent", "decay_grace_days")},
    )  # fmt: skip


def jobs(project):
    return list(RescoreJob.objects.filter(project=project).order_by("id"))


# --- rules CRUD -----------------------------------------------------------------------------------------------


def test_list_shows_the_projects_rules_in_a_fixed_number_of_queries(tenant, django_assert_num_queries):
    with django_assert_num_queries(3):  # user, membership, rules
        body = tenant.client.get("/api/rules").json()
    assert [(r["eventType"], r["points"]) for r in body["results"]][:3] == [
        ("page_view", 5),
        ("email_open", 10),
        ("form_submit", 20),
    ]
    assert len(body["results"]) == 10 and set(body["results"][0]) == RULE_FIELDS

    rule_row(tenant.project, VP_FIT)
    for i in range(5):
        rule_row(tenant.project, {**PRICING, "name": f"extra {i}"})
    with django_assert_num_queries(3):
        assert len(tenant.client.get("/api/rules").json()["results"]) == 16


def test_list_filters_by_kind(tenant):
    fit = rule_row(tenant.project, VP_FIT)
    assert [r["id"] for r in tenant.client.get("/api/rules?kind=fit").json()["results"]] == [fit.id]
    assert len(tenant.client.get("/api/rules?kind=engagement").json()["results"]) == 10
    response = tenant.client.get("/api/rules?kind=demographic")
    assert response.status_code == 400 and "kind" in response.json()["error"]["fields"]


@pytest.mark.parametrize("prefix", ["/api/rules", "/api/scoring-rules"])
def test_create_get_put_patch_delete(tenant, prefix):
    # create
    response = tenant.client.post(prefix, PRICING, format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    assert set(created) == RULE_FIELDS
    assert {k: created[k] for k in PRICING} == PRICING
    assert (created["kind"], created["maxPerLead"], created["maxPoints"], created["isActive"]) == (
        "engagement",
        None,
        None,
        True,
    )
    rule = ScoringRule.objects.get(id=created["id"], project=tenant.project)
    assert (rule.event_type, rule.points, rule.max_per_day, rule.conditions) == (
        "page_view",
        15,
        1,
        PRICING["conditions"],
    )

    # get
    assert tenant.client.get(f"{prefix}/{rule.id}").json() == created

    # put
    replacement = {**PRICING, "name": "Pricing (any page)", "points": 12, "maxPerDay": 2, "maxPoints": 100}
    response = tenant.client.put(f"{prefix}/{rule.id}", replacement, format="json")
    assert response.status_code == 200, response.json()
    assert (response.json()["points"], response.json()["maxPerDay"], response.json()["maxPoints"]) == (12, 2, 100)
    rule.refresh_from_db()
    assert (rule.name, rule.points, rule.max_per_day, rule.max_points) == ("Pricing (any page)", 12, 2, 100)

    # patch
    response = tenant.client.patch(
        f"{prefix}/{rule.id}", {"points": -3, "isActive": False, "maxPerDay": None}, format="json"
    )
    assert response.status_code == 200, response.json()
    rule.refresh_from_db()
    assert (rule.points, rule.is_active, rule.max_per_day, rule.name) == (-3, False, None, "Pricing (any page)")
    assert tenant.client.get(f"{prefix}/{rule.id}").json()["points"] == -3

    # delete
    assert tenant.client.delete(f"{prefix}/{rule.id}").status_code == 204
    assert not ScoringRule.objects.filter(id=rule.id).exists()
    assert tenant.client.get(f"{prefix}/{rule.id}").status_code == 404


def test_a_wildcard_rule_and_a_fit_rule_can_be_created(tenant):
    wildcard = tenant.client.post("/api/rules", {"eventType": "*", "points": 1, "maxPerLead": 10}, format="json")
    assert wildcard.status_code == 201 and wildcard.json()["eventType"] == "*"

    # an event type sent with a fit rule is dropped: fit rules look at the lead, not events
    fit = tenant.client.post("/api/rules", {**VP_FIT, "eventType": "page_view"}, format="json")
    assert fit.status_code == 201, fit.json()
    assert (fit.json()["kind"], fit.json()["eventType"]) == ("fit", "")
    assert ScoringRule.objects.get(id=fit.json()["id"]).event_type == ""


def test_conditions_are_stored_normalised(tenant):
    conditions = [
        {"path": "properties.url", "op": "exists", "value": "ignored"},  # (an unknown key is a 400: test_api_access)
        {"path": "properties.seats", "op": "gte", "value": 10},
    ]
    response = tenant.client.post(
        "/api/rules", {"eventType": "signup", "points": 5, "conditions": conditions}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["conditions"] == [
        {"path": "properties.url", "op": "exists", "value": None},
        {"path": "properties.seats", "op": "gte", "value": 10},
    ]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (with_conditions(("properties.url", "like", "x")), "conditions[0].op"),
        (with_conditions(("properties.url", "regex", "(unclosed")), "conditions[0].value"),
        (with_conditions(("properties.url", "regex", r"(a)\1")), "conditions[0].value"),  # backreference
        (with_conditions(("properties.url", "contains", "/pricing"), ("a..b", "eq", 1)), "conditions[1].path"),
        (with_conditions(("properties.n", "gt", "lots")), "conditions[0].value"),
        ({**PRICING, "conditions": ["properties.url contains x"]}, "conditions[0]"),
        ({**PRICING, "conditions": {"path": "properties.url"}}, "conditions"),
        ({**PRICING, "conditions": [PRICING["conditions"][0]] * 21}, "conditions"),
        ({**PRICING, "points": "ten"}, "points"),
        ({**PRICING, "points": 1.5}, "points"),
        ({**PRICING, "points": 10001}, "points"),
        ({k: v for k, v in PRICING.items() if k != "points"}, "points"),
        ({k: v for k, v in PRICING.items() if k != "eventType"}, "eventType"),
        ({**PRICING, "eventType": ""}, "eventType"),
        ({**PRICING, "eventType": "page view!"}, "eventType"),
        ({**VP_FIT, "conditions": []}, "conditions"),
        ({k: v for k, v in VP_FIT.items() if k != "conditions"}, "conditions"),
        ({**PRICING, "maxPerDay": 0}, "maxPerDay"),
        ({**PRICING, "maxPoints": -5}, "maxPoints"),
        ({**PRICING, "kind": "demographic"}, "kind"),
        # PostgreSQL's jsonb refuses NUL: these were 500s
        (with_conditions(("properties.url", "contains", "a\x00b")), "conditions[0]"),
        (with_conditions(("properties.\x00", "exists", None)), "conditions[0]"),
        (
            {**PRICING, "conditions": [{"path": "properties.tags", "op": "in", "value": [{"k": "\x00"}]}]},
            "conditions[0]",
        ),
        # JSON types as documented: no coercion of strings and numbers
        ({**PRICING, "points": "10"}, "points"),
        ({**PRICING, "isActive": 1}, "isActive"),
        ({**PRICING, "name": 7}, "name"),
    ],
)
def test_create_rejects_invalid_rules_naming_the_field(tenant, payload, field):
    before = snapshot(tenant.project)

    response = tenant.client.post("/api/rules", payload, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["fields"], error
    assert error["message"].startswith(field)
    assert snapshot(tenant.project) == before  # no rule, no job


def test_update_validates_against_the_stored_rule(tenant):
    fit = rule_row(tenant.project, VP_FIT)
    engagement = rule_row(tenant.project, PRICING)
    before = snapshot(tenant.project)

    cases = [
        (fit, {"conditions": []}, "conditions"),
        (engagement, {"eventType": ""}, "eventType"),
        (engagement, {"conditions": [{"path": "properties.url", "op": "nope", "value": 1}]}, "conditions[0].op"),
        (engagement, {"points": "x"}, "points"),
    ]
    for rule, payload, field in cases:
        response = tenant.client.patch(f"/api/rules/{rule.id}", payload, format="json")
        assert response.status_code == 400 and field in response.json()["error"]["fields"], (payload, response.json())
    # a PUT is a full replacement: points are required
    response = tenant.client.put(f"/api/rules/{engagement.id}", {"eventType": "page_view"}, format="json")
    assert response.status_code == 400 and "points" in response.json()["error"]["fields"]
    assert snapshot(tenant.project) == before


def test_members_read_rules_and_settings_but_cannot_write(tenant):
    client = member_client(tenant.project)
    rule = ScoringRule.objects.filter(project=tenant.project).first()
    before = snapshot(tenant.project)

    assert client.get("/api/rules").status_code == 200
    assert client.get(f"/api/rules/{rule.id}").json()["id"] == rule.id
    assert client.get("/api/scoring/settings").json() == SETTINGS
    writes = [
        client.post("/api/rules", PRICING, format="json"),
        client.post("/api/scoring-rules", PRICING, format="json"),
        client.put(f"/api/rules/{rule.id}", PRICING, format="json"),
        client.patch(f"/api/rules/{rule.id}", {"points": 99}, format="json"),
        client.delete(f"/api/rules/{rule.id}"),
        client.put("/api/scoring/settings", SETTINGS, format="json"),
        client.patch("/api/scoring/settings", {"decayEnabled": False}, format="json"),
    ]
    assert [response.status_code for response in writes] == [403] * len(writes)
    assert writes[0].json()["error"]["code"] == "forbidden"
    assert snapshot(tenant.project) == before


def test_another_projects_rules_are_404_and_never_listed(tenant, other_tenant):
    theirs = rule_row(other_tenant.project, PRICING)
    their_before = snapshot(other_tenant.project)

    for prefix in ("/api/rules", "/api/scoring-rules"):
        url = f"{prefix}/{theirs.id}"
        responses = [
            tenant.client.get(url),
            tenant.client.put(url, PRICING, format="json"),
            tenant.client.patch(url, {"points": 1}, format="json"),
            tenant.client.delete(url),
        ]
        assert [response.status_code for response in responses] == [404] * 4
        assert {response.json()["error"]["code"] for response in responses} == {"not_found"}
    assert theirs.id not in [r["id"] for r in tenant.client.get("/api/rules").json()["results"]]
    assert tenant.client.get("/api/rules/not-a-number").status_code == 404
    assert snapshot(other_tenant.project) == their_before


# --- re-score jobs --------------------------------------------------------------------------------------------


def test_each_rule_write_starts_a_job_and_supersedes_the_unfinished_one(tenant):
    scored_lead(tenant.project, "a", ("page_view", 0, {}))
    scored_lead(tenant.project, "b", ("signup", 0, {}))

    created = tenant.client.post("/api/rules", PRICING, format="json").json()
    first = jobs(tenant.project)
    assert [(job.status, job.total, job.done) for job in first] == [("pending", 2, 0)]
    assert f"rule {created['id']} created" in first[0].reason

    tenant.client.patch(f"/api/rules/{created['id']}", {"points": 20}, format="json")
    second = jobs(tenant.project)
    assert [job.status for job in second] == ["superseded", "pending"]
    assert second[0].finished_at is not None and "points" in second[1].reason

    tenant.client.put(f"/api/rules/{created['id']}", {**PRICING, "points": 25}, format="json")
    tenant.client.delete(f"/api/rules/{created['id']}")
    assert [job.status for job in jobs(tenant.project)] == ["superseded", "superseded", "superseded", "pending"]
    assert "deleted" in jobs(tenant.project)[-1].reason


def test_a_write_that_changes_nothing_starts_no_job(tenant):
    rule = rule_row(tenant.project, PRICING)
    assert tenant.client.patch(f"/api/rules/{rule.id}", {"points": 15}, format="json").status_code == 200
    assert tenant.client.put(f"/api/rules/{rule.id}", PRICING, format="json").status_code == 200
    assert jobs(tenant.project) == []


def test_a_finished_job_is_not_superseded(tenant):
    done = RescoreJob.objects.create(project=tenant.project, status=RescoreJob.Status.SUCCEEDED)
    running = RescoreJob.objects.create(project=tenant.project, status=RescoreJob.Status.RUNNING)

    tenant.client.post("/api/rules", PRICING, format="json")

    assert [(job.id, job.status) for job in jobs(tenant.project)][:2] == [
        (done.id, "succeeded"),
        (running.id, "superseded"),
    ]
    assert [job.status for job in jobs(tenant.project)][2:] == ["pending"]


def test_jobs_of_one_project_do_not_supersede_anothers(tenant, other_tenant):
    other_tenant.client.post("/api/rules", PRICING, format="json")
    tenant.client.post("/api/rules", PRICING, format="json")
    assert [job.status for job in jobs(other_tenant.project)] == ["pending"]


def test_rescore_job_detail_and_list(tenant, other_tenant):
    scored_lead(tenant.project, "a", ("page_view", 0, {}))
    tenant.client.post("/api/rules", PRICING, format="json")
    job = jobs(tenant.project)[-1]
    RescoreJob.objects.filter(pk=job.pk).update(status="running", done=1, total=3)

    body = tenant.client.get(f"/api/rescore-jobs/{job.id}").json()

    assert set(body) == {
        "id", "status", "reason", "total", "done", "changed", "progress", "createdAt", "startedAt", "finishedAt",
    }  # fmt: skip
    assert (body["id"], body["status"], body["total"], body["done"], body["changed"]) == (job.id, "running", 3, 1, 0)
    assert body["progress"] == 0.3333
    assert body["finishedAt"] is None and body["reason"].startswith("rule ")
    assert [j["id"] for j in tenant.client.get("/api/rescore-jobs").json()["results"]] == [job.id]
    # another project's job is not found
    assert other_tenant.client.get(f"/api/rescore-jobs/{job.id}").status_code == 404
    assert other_tenant.client.get("/api/rescore-jobs").json()["results"] == []
    assert tenant.client.get("/api/rescore-jobs/x").status_code == 404

    RescoreJob.objects.filter(pk=job.pk).update(status="succeeded")
    assert tenant.client.get(f"/api/rescore-jobs/{job.id}").json()["progress"] == 1.0
    RescoreJob.objects.filter(pk=job.pk).update(status="pending", total=0, done=0)
    assert tenant.client.get(f"/api/rescore-jobs/{job.id}").json()["progress"] == 0.0


# --- settings -------------------------------------------------------------------------------------------------


def test_settings_get_put_patch(tenant):
    assert tenant.client.get("/api/scoring/settings").json() == SETTINGS

    changed = {**SETTINGS, "warmThreshold": 20, "hotThreshold": 40, "qualifiedThreshold": 80, "maxScore": 500}
    response = tenant.client.put("/api/scoring/settings", changed, format="json")
    assert response.status_code == 200 and response.json() == changed
    model = primary_model(tenant.project)
    assert (model.warm_threshold, model.max_score) == (20, 500)
    assert [job.status for job in jobs(tenant.project)] == ["pending"]

    response = tenant.client.patch(
        "/api/scoring/settings", {"decayEnabled": False, "decayRatePercent": 2.5, "decayGraceDays": 30}, format="json"
    )
    assert response.status_code == 200
    assert response.json() == {**changed, "decayEnabled": False, "decayRatePercent": 2.5, "decayGraceDays": 30}
    model = primary_model(tenant.project)
    assert (model.decay_enabled, model.decay_rate_percent, model.decay_grace_days) == (
        False,
        2.5,
        30,
    )
    assert [job.status for job in jobs(tenant.project)] == ["superseded", "pending"]
    assert "decay_enabled" in jobs(tenant.project)[-1].reason

    # the same values again: nothing to re-score
    assert tenant.client.patch("/api/scoring/settings", {"decayEnabled": False}, format="json").status_code == 200
    assert len(jobs(tenant.project)) == 2


@pytest.mark.parametrize(
    ("method", "payload", "field"),
    [
        ("patch", {"hotThreshold": 11}, "hotThreshold"),  # equal to warm
        ("patch", {"warmThreshold": 40}, "hotThreshold"),  # above hot
        ("patch", {"qualifiedThreshold": 20}, "hotThreshold"),
        ("patch", {"maxScore": 59}, "hotThreshold"),  # below qualified
        ("put", {**SETTINGS, "qualifiedThreshold": 31}, "hotThreshold"),
        ("patch", {"warmThreshold": 0}, "warmThreshold"),
        ("patch", {"decayRatePercent": 101}, "decayRatePercent"),
        ("patch", {"decayRatePercent": -1}, "decayRatePercent"),
        ("patch", {"decayGraceDays": "soon"}, "decayGraceDays"),
        ("patch", {"decayGraceDays": "3"}, "decayGraceDays"),  # JSON types as documented
        ("patch", {"decayEnabled": 0}, "decayEnabled"),
        ("patch", {"decayRatePercent": "5"}, "decayRatePercent"),
        ("put", {k: v for k, v in SETTINGS.items() if k != "maxScore"}, "maxScore"),
    ],
)
def test_settings_are_validated(tenant, method, payload, field):
    before = snapshot(tenant.project)
    response = getattr(tenant.client, method)("/api/scoring/settings", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"], response.json()
    assert snapshot(tenant.project) == before


def test_settings_may_make_qualified_equal_to_max_score(tenant):
    response = tenant.client.patch("/api/scoring/settings", {"maxScore": 60}, format="json")
    assert response.status_code == 200 and response.json()["maxScore"] == 60


# --- preview --------------------------------------------------------------------------------------------------


@pytest.fixture
def preview_leads(tenant):
    """Five leads scored with the default rules."""
    pricing = {"url": "https://acme.test/pricing"}
    return {
        "a": scored_lead(tenant.project, "a", ("page_view", 0, pricing), ("page_view", 5, pricing)),  # 10 cold
        "b": scored_lead(tenant.project, "b", ("signup", 0, {}), email="b@acme.test"),  # 30 warm
        "c": scored_lead(tenant.project, "c", ("demo_request", 0, {})),  # 50 hot
        "d": scored_lead(tenant.project, "d", ("page_view", 0, {"url": "/blog"})),  # 5 cold
        "e": scored_lead(tenant.project, "e", traits={"title": "VP Engineering"}),  # 0 cold, no events
    }


PROPOSED = [
    {"eventType": "page_view", "points": 5},
    PRICING,
    {"eventType": "signup", "points": 40},
    {"eventType": "demo_request", "points": 50, "isActive": False},
    VP_FIT,
]


def test_preview_reports_changes_without_saving_anything(tenant, preview_leads):
    leads = preview_leads
    assert [leads[k].current_score for k in "abcde"] == [10, 30, 50, 5, 0]
    before = snapshot(tenant.project)

    response = tenant.client.post("/api/rules/preview", {"rules": PROPOSED}, format="json")

    assert response.status_code == 200, response.json()
    body = response.json()
    # a: 5 + 5 + 15 (pricing once a day) = 25; b: 40; c: 0 (demo rule inactive); d: 5 (unchanged); e: fit 20
    assert (body["leadsEvaluated"], body["scoreChanged"], body["stageChanged"]) == (5, 4, 4)
    assert body["stageTransitions"] == {"cold->warm": 2, "hot->cold": 1, "warm->hot": 1}
    assert [(m["leadId"], m["from"], m["to"], m["delta"], m["fromStage"], m["toStage"]) for m in body["topMovers"]] == [
        (leads["c"].id, 50, 0, -50, "hot", "cold"),
        (leads["e"].id, 0, 20, 20, "cold", "warm"),
        (leads["a"].id, 10, 25, 15, "cold", "warm"),
        (leads["b"].id, 30, 40, 10, "warm", "hot"),
    ]
    assert body["topMovers"][3]["anonymousId"] == "b" and body["topMovers"][3]["email"] == "b@acme.test"
    assert snapshot(tenant.project) == before


def test_preview_at_the_scoring_rules_path_and_with_the_current_rules_changes_nothing(tenant, preview_leads):
    read_only = ("id", "model", "createdAt", "updatedAt")  # refused like unknown fields: they cannot be proposed
    current = [
        {k: v for k, v in rule.items() if k not in read_only}
        for rule in tenant.client.get("/api/rules").json()["results"]
    ]
    response = tenant.client.post("/api/scoring-rules/preview", {"rules": current}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "leadsEvaluated": 5,
        "scoreChanged": 0,
        "stageChanged": 0,
        "stageTransitions": {},
        "topMovers": [],
    }


def test_preview_with_proposed_settings(tenant, preview_leads):
    before = snapshot(tenant.project)
    body = tenant.client.post(
        "/api/rules/preview", {"rules": PROPOSED, "settings": {**SETTINGS, "hotThreshold": 45}}, format="json"
    ).json()
    # b reaches 40: still warm under the proposed hot threshold
    assert body["stageTransitions"] == {"cold->warm": 2, "hot->cold": 1}
    assert snapshot(tenant.project) == before


def test_preview_accepts_a_partial_settings_object(tenant, preview_leads):
    response = tenant.client.post(
        "/api/rules/preview", {"rules": PROPOSED, "settings": {"hotThreshold": 45}}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["stageTransitions"] == {"cold->warm": 2, "hot->cold": 1}


def test_preview_keeps_the_20_largest_movers(tenant):
    events_ingest(
        project_id=tenant.project.id,
        events=[
            CanonicalEvent(event_id=f"m{i}-{j}", name="page_view", anonymous_id=f"m{i}", timestamp=BASE)
            for i in range(22)
            for j in range(1 + i % 3)
        ],
    )
    for lead in Lead.objects.filter(project=tenant.project):
        lead_score(lead_id=lead.id)

    body = tenant.client.post(
        "/api/rules/preview", {"rules": [{"eventType": "page_view", "points": 6}]}, format="json"
    ).json()

    assert body["scoreChanged"] == 22 and len(body["topMovers"]) == 20
    deltas = [m["delta"] for m in body["topMovers"]]
    assert deltas == sorted(deltas, reverse=True) and deltas[0] == 3 and deltas[-1] == 1
    lead_ids = {m["leadId"] for m in body["topMovers"]}
    ones = sorted(Lead.objects.filter(project=tenant.project, current_score=5).values_list("id", flat=True))
    assert lead_ids >= set(
        Lead.objects.filter(project=tenant.project, current_score__gt=5).values_list("id", flat=True)
    )
    assert not lead_ids & set(ones[-2:])  # ties broken by lead id: the two highest ids with +1 drop out


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ({"rules": [{"eventType": "page_view", "points": 5, "conditions": [{"path": "a", "op": "x"}]}]}, ("rules", 0)),
        ({"rules": [{"eventType": "page_view", "points": "many"}]}, ("rules", 0)),
        ({}, ("rules",)),
        ({"rules": [], "settings": {**SETTINGS, "hotThreshold": 5}}, ("settings",)),
    ],
)
def test_preview_rejects_invalid_proposals(tenant, payload, path):
    response = tenant.client.post("/api/rules/preview", payload, format="json")
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert path[0] in fields


def test_preview_names_the_condition_field_of_the_rule(tenant):
    payload = {
        "rules": [{"eventType": "page_view", "points": 5}, {**PRICING, "conditions": [{"path": "a", "op": "x"}]}]
    }
    fields = tenant.client.post("/api/rules/preview", payload, format="json").json()["error"]["fields"]
    assert list(fields["rules"]) == ["1"] and list(fields["rules"]["1"]) == ["conditions[0].op"]


# --- breakdown ------------------------------------------------------------------------------------------------


def assert_adds_up(body):
    assert (
        sum(rule["points"] for rule in body["rules"]) + body["clampAdjustment"] + body["decayBetweenEvents"]
        == (body["foldScore"])
    )
    assert body["foldScore"] + body["decaySinceLastEvent"] == body["engagementScore"]
    assert sum(rule["points"] for rule in body["fit"]) == body["fitScore"]
    assert body["engagementScore"] + body["fitScore"] + body["finalClampAdjustment"] == body["currentScore"]


def test_breakdown_of_capped_clamped_and_fit_points(tenant):
    # given the pricing rule (once a day), a VP fit rule, and a lead who unsubscribed (clamped at 0) and came back
    pricing = rule_row(tenant.project, PRICING)
    fit = rule_row(tenant.project, VP_FIT)
    by_type = dict(ScoringRule.objects.filter(project=tenant.project, name__in=["Page view", "Unsubscribe", "Signup"])
                   .values_list("event_type", "id"))  # fmt: skip
    lead = scored_lead(
        tenant.project,
        "anon",
        ("unsubscribe", 0, {}),
        ("page_view", 1, {"url": "/pricing"}),
        ("page_view", 2, {"url": "/pricing?again"}),
        ("signup", 3, {}),
        traits={"title": "VP Sales"},
        email="vp@acme.test",
    )

    body = tenant.client.get(f"/api/leads/{lead.id}/score-breakdown").json()

    assert (body["currentScore"], body["engagementScore"], body["fitScore"], body["fitGrade"]) == (75, 55, 20, "B")
    assert [(r["ruleId"], r["timesApplied"], r["points"]) for r in body["rules"]] == [
        (by_type["signup"], 1, 30),
        (by_type["unsubscribe"], 1, -20),
        (pricing.id, 1, 15),
        (by_type["page_view"], 2, 10),
    ]
    assert body["rules"][2]["name"] == "Pricing view" and body["rules"][2]["eventType"] == "page_view"
    assert (body["clampAdjustment"], body["decayBetweenEvents"], body["foldScore"]) == (20, 0, 55)
    assert (body["decaySinceLastEvent"], body["finalClampAdjustment"], body["stale"]) == (0, 0, False)
    assert body["fit"] == [{"ruleId": fit.id, "name": "VP", "eventType": "", "points": 20}]
    assert_adds_up(body)
    assert body["currentScore"] == tenant.client.get(f"/api/leads/{lead.id}").json()["currentScore"]


def test_breakdown_with_decay_and_a_negative_fit_clamped_at_zero(tenant):
    rule_row(tenant.project, {"name": "Free mail", "kind": "fit", "points": -40,
                              "conditions": [{"path": "email", "op": "ends_with", "value": "@gmail.com"}]})  # fmt: skip
    # 10 idle days: 3 past the grace period, 100 * 0.95 ** 3 = 85.7
    lead = scored_lead(
        tenant.project,
        "idle",
        ("contract_signed", 0, {}),
        at=timezone.now() - timedelta(days=10, hours=1),
        email="someone@gmail.com",
    )
    body = tenant.client.get(f"/api/leads/{lead.id}/score-breakdown").json()
    assert (body["foldScore"], body["decaySinceLastEvent"], body["engagementScore"]) == (100, -14, 86)
    assert (body["fitScore"], body["fitGrade"], body["currentScore"], body["finalClampAdjustment"]) == (-40, "D", 46, 0)
    assert_adds_up(body)

    lead2 = scored_lead(tenant.project, "poor", ("page_view", 0, {}), email="poor@gmail.com")
    body = tenant.client.get(f"/api/leads/{lead2.id}/score-breakdown").json()
    assert (body["engagementScore"], body["fitScore"], body["currentScore"], body["finalClampAdjustment"]) == (
        5,
        -40,
        0,
        35,
    )
    assert_adds_up(body)


def test_breakdown_names_deleted_rules(tenant):
    lead = scored_lead(tenant.project, "anon", ("download", 0, {}))
    download = ScoringRule.objects.get(project=tenant.project, event_type="download")
    download_id = download.id
    download.delete()  # not yet re-scored

    body = tenant.client.get(f"/api/leads/{lead.id}/score-breakdown").json()

    assert body["rules"] == [
        {
            "ruleId": download_id,
            "name": "(deleted rule)",
            "eventType": "",
            "timesApplied": 1,
            "points": 15,
            "window": None,
        }
    ]
    assert body["currentScore"] == 15 and body["stale"] is False
    assert_adds_up(body)


def test_breakdown_adds_up_while_a_fit_change_is_not_yet_rescored(tenant):
    lead = scored_lead(tenant.project, "anon", ("download", 0, {}), traits={"title": "VP"})
    rule_row(tenant.project, VP_FIT)  # not yet re-scored

    body = tenant.client.get(f"/api/leads/{lead.id}/score-breakdown").json()

    assert body["stale"] is True and body["fitScore"] == 0 and body["currentScore"] == 15
    assert_adds_up(body)


def test_breakdown_and_intelligence_of_another_projects_lead_are_404(tenant, other_tenant):
    lead = scored_lead(tenant.project, "anon", ("signup", 0, {}))
    for path in (f"/api/leads/{lead.id}/score-breakdown", f"/api/leads/{lead.id}/intelligence"):
        assert other_tenant.client.get(path).status_code == 404
        assert tenant.client.get(path).status_code == 200


# --- intelligence ---------------------------------------------------------------------------------------------

INTELLIGENCE_FIELDS = {
    "velocity", "velocityScore", "trend", "eventsPrevious24h", "risk", "nextAction", "daysSinceLastEvent",
    "leadStage", "currentScore",
}  # fmt: skip


def test_intelligence_of_an_active_hot_lead(tenant):
    now = timezone.now()
    lead = scored_lead(
        tenant.project,
        "busy",
        ("signup", -30 * 60, {}),
        ("page_view", -3 * 60, {}),
        ("page_view", -2 * 60, {}),
        ("page_view", -60, {}),
        at=now,
    )

    body = tenant.client.get(f"/api/leads/{lead.id}/intelligence").json()

    assert set(body) == INTELLIGENCE_FIELDS
    assert body == {
        "velocity": 3,
        "velocityScore": 3,
        "trend": "increasing",
        "eventsPrevious24h": 1,
        "risk": "low",
        "nextAction": "schedule_demo",
        "daysSinceLastEvent": 0,
        "leadStage": "hot",
        "currentScore": 45,
    }


def test_intelligence_of_a_hot_lead_with_high_velocity(tenant):
    now = timezone.now()
    lead = scored_lead(tenant.project, "fast", *[("page_view", -m, {}) for m in range(10, 80, 10)], at=now)
    body = tenant.client.get(f"/api/leads/{lead.id}/intelligence").json()
    assert (body["velocity"], body["velocityScore"], body["currentScore"], body["leadStage"], body["nextAction"]) == (
        7,
        7,
        35,
        "hot",
        "immediate_sales_contact",
    )


def test_intelligence_of_an_idle_warm_lead(tenant):
    lead = scored_lead(tenant.project, "idle", ("signup", 0, {}), at=timezone.now() - timedelta(days=10, hours=1))
    body = tenant.client.get(f"/api/leads/{lead.id}/intelligence").json()
    assert body == {
        "velocity": 0,
        "velocityScore": 0,
        "trend": "steady",
        "eventsPrevious24h": 0,
        "risk": "medium",
        "nextAction": "re_engagement_required",
        "daysSinceLastEvent": 10,
        "leadStage": "warm",
        "currentScore": 26,  # 30 decayed 3 days at 5 %
    }


def test_intelligence_of_a_lead_without_events(tenant):
    lead = scored_lead(tenant.project, "new")
    body = tenant.client.get(f"/api/leads/{lead.id}/intelligence").json()
    assert (body["risk"], body["daysSinceLastEvent"], body["nextAction"], body["trend"]) == (
        "high",
        None,
        "monitor",
        "steady",
    )
