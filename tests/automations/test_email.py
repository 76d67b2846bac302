"""The email action is no open relay: members or verified addresses only, at most 10, a daily budget."""

import re
from concurrent.futures import ThreadPoolExecutor
from email import message_from_bytes
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.db import connection
from django.test import Client

from accounts.models import Membership
from automations import services
from automations.models import AutomationExecution, AutomationRule, EmailSendDay, VerifiedRecipient
from core.contracts import LeadChange
from tests.accounts.factories import UserFactory
from tests.conftest import client_for
from tests.ingest.factories import LeadFactory

pytestmark = pytest.mark.django_db
OUTSIDE = "partner@outside.example"


def email_rule(to, **extra):
    return {"name": "Tell sales", "trigger": "stage_entered", "triggerConfig": {"stage": "hot"}, "action": "email",
            "actionConfig": {"to": to}, **extra}  # fmt: skip


def member_of(project, role="member", **fields):
    user = UserFactory(**fields)
    Membership.objects.create(user=user, project=project, role=role)
    return user


def fire(project, anonymous_id="a-1", **fields):
    """A lead of the project enters hot; every claimed execution runs. The executions, newest first."""
    lead = LeadFactory(project=project, anonymous_id=anonymous_id, current_score=40, lead_stage="hot", **fields)
    services.lead_change_handle(change=LeadChange.from_message({
        "kind": "scored", "projectId": project.id, "leadId": lead.id, "oldScore": 20, "newScore": 40, "velocity": 3,
        "oldStage": "warm", "newStage": "hot", "eventIds": [], "path": [[20, "warm"], [40, "hot"]]}))  # fmt: skip
    for execution in AutomationExecution.objects.filter(status="pending"):
        services.automation_execute(execution_id=execution.id)
    return list(AutomationExecution.objects.filter(lead=lead))


@pytest.fixture
def ask(django_capture_on_commit_callbacks):
    """Request an address's verification as `client` does; the link is mailed when the request commits."""

    def ask(client, email, path="/api/email-recipients"):
        with django_capture_on_commit_callbacks(execute=True):
            if path.startswith("/api/"):
                return client.post(path, {"email": email}, format="json")
            return client.post(path, {"email": email})

    return ask


def fields_of(response):
    return response.json()["error"]["fields"]


# --- Saving a rule ------------------------------------------------------------------------------


def test_an_outside_address_is_400_naming_the_field(tenant):
    response = tenant.client.post("/api/automations", email_rule([tenant.owner.email, OUTSIDE]), format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "recipient_not_allowed"
    assert OUTSIDE in fields_of(response)["actionConfig.to"][0]
    assert not AutomationRule.objects.exists()


def test_an_email_rules_recipients_are_checked_on_update_too(tenant):
    rule = tenant.client.post("/api/automations", email_rule([tenant.owner.email]), format="json").json()
    response = tenant.client.patch(f"/api/automations/{rule['id']}", {"actionConfig": {"to": [OUTSIDE]}},
                                   format="json")  # fmt: skip
    assert response.status_code == 400 and "actionConfig.to" in fields_of(response)
    # switching another rule's action to email is checked as well
    tag = tenant.client.post("/api/automations", {**email_rule([]), "action": "add_tag", "actionConfig": {"tag": "x"}},
                             format="json").json()  # fmt: skip
    response = tenant.client.patch(f"/api/automations/{tag['id']}", {"action": "email",
                                   "actionConfig": {"to": [OUTSIDE]}}, format="json")  # fmt: skip
    assert response.status_code == 400 and "actionConfig.to" in fields_of(response)
    assert AutomationRule.objects.get(id=rule["id"]).action_config == {"to": [tenant.owner.email]}


def test_eleven_recipients_are_400_even_when_all_are_members(tenant):
    members = [member_of(tenant.project).email for _ in range(10)]
    assert tenant.client.post("/api/automations", email_rule(members), format="json").status_code == 201
    response = tenant.client.post("/api/automations", email_rule([*members, tenant.owner.email]), format="json")
    assert response.status_code == 400 and "actionConfig.to" in fields_of(response)
    assert AutomationRule.objects.count() == 1


@pytest.mark.parametrize(
    "to",
    [
        "sales@acme.io",
        [],
        [5],
        ["not-an-address"],
        ["sales@acme.io\nBcc: victim@evil.example"],
        ["sales@acme.io\r\n"],
        ["Sales <sales@acme.io>"],
        ["sales@acme.io, victim@evil.example"],
        ["x" * 250 + "@acme.io"],
    ],
)
def test_recipients_must_be_plain_addresses(tenant, to):
    response = tenant.client.post("/api/automations", email_rule(to), format="json")
    assert response.status_code == 400, response.content
    assert "actionConfig.to" in fields_of(response)


def test_the_page_form_refuses_an_outside_address_on_its_field(tenant):
    client = Client()
    client.force_login(tenant.owner)
    page = client.post("/automations/rules/", {"name": "Mail", "trigger": "stage_entered",
                       "trigger_config": '{"stage": "hot"}', "lead_conditions": "{}", "action": "email",
                       "action_config": f'{{"to": ["{OUTSIDE}"]}}', "cooldown_seconds": "3600"})  # fmt: skip
    assert page.status_code == 200 and OUTSIDE in str(page.context["rule_form"].errors["action_config"])
    assert not AutomationRule.objects.exists()


# --- Verified recipients ----------------------------------------------------------------------------


def confirmation_path(message) -> str:
    (link,) = re.findall(r"https?://\S+/automations/recipients/confirm/\S+/", message.body)
    return urlsplit(link).path


def test_an_outside_address_is_mailed_only_after_its_owner_confirms(tenant, ask):
    # given: a verification requested, not yet confirmed
    requested = ask(tenant.client, "Partner@Outside.example")
    assert requested.status_code == 202, requested.content
    assert requested.json()["email"] == OUTSIDE and requested.json()["verifiedAt"] is None
    (invitation,) = mail.outbox
    assert invitation.to == [OUTSIDE] and tenant.project.name in invitation.body
    response = tenant.client.post("/api/automations", email_rule([OUTSIDE]), format="json")
    assert response.status_code == 400 and "actionConfig.to" in fields_of(response)

    # when: the link is opened (a GET, as a mail scanner would, changes nothing), then confirmed
    path = confirmation_path(invitation)
    visitor = Client()  # the owner of the address needs no account
    page = visitor.get(path)
    assert page.status_code == 200 and OUTSIDE in page.content.decode()
    assert VerifiedRecipient.objects.get().verified_at is None
    assert visitor.post(path).status_code == 200

    # then: the address may be mailed, and the link works once
    listed = tenant.client.get("/api/email-recipients").json()["results"]
    assert [(r["email"], r["verifiedAt"] is not None) for r in listed] == [(OUTSIDE, True)]
    assert visitor.post(path).status_code == 404
    assert tenant.client.post("/api/automations", email_rule([OUTSIDE]), format="json").status_code == 201
    fire(tenant.project)
    assert mail.outbox[-1].to == [OUTSIDE]
    again = ask(tenant.client, OUTSIDE)
    assert again.status_code == 200 and len(mail.outbox) == 2  # verified already: no new link


def test_only_the_latest_genuine_link_confirms(tenant, ask):
    for _ in range(2):
        assert ask(tenant.client, OUTSIDE).status_code == 202
    first, second = (confirmation_path(message) for message in mail.outbox)
    forged = second[:-3] + ("A" if second[-3] != "A" else "B") + second[-2:]
    for path in (first, forged, "/automations/recipients/confirm/not-a-token/"):
        assert Client().post(path).status_code == 404, path
    assert VerifiedRecipient.objects.get().verified_at is None
    assert Client().post(second).status_code == 200
    assert VerifiedRecipient.objects.get().verified_at is not None


def test_a_members_address_needs_no_verification(tenant, ask):
    response = ask(tenant.client, tenant.owner.email)
    assert response.status_code == 400 and "email" in fields_of(response)
    assert mail.outbox == []


def test_members_cannot_request_verifications_and_projects_do_not_see_each_others(tenant, other_tenant, ask):
    member = client_for(member_of(tenant.project))
    assert ask(member, OUTSIDE).status_code == 403
    ask(tenant.client, OUTSIDE)
    recipient = VerifiedRecipient.objects.get()
    assert member.get("/api/email-recipients").json()["results"][0]["id"] == recipient.id
    assert other_tenant.client.get("/api/email-recipients").json()["results"] == []
    assert other_tenant.client.delete(f"/api/email-recipients/{recipient.id}").status_code == 404
    # a recipient verified for one project is no recipient of another
    Client().post(confirmation_path(mail.outbox[0]))
    response = other_tenant.client.post("/api/automations", email_rule([OUTSIDE]), format="json")
    assert response.status_code == 400 and "actionConfig.to" in fields_of(response)


def test_a_removed_recipient_is_no_longer_mailed(tenant, ask):
    ask(tenant.client, OUTSIDE)
    Client().post(confirmation_path(mail.outbox[0]))
    tenant.client.post("/api/automations", email_rule([OUTSIDE, tenant.owner.email]), format="json")

    assert tenant.client.delete(f"/api/email-recipients/{VerifiedRecipient.objects.get().id}").status_code == 204
    fire(tenant.project)

    assert mail.outbox[-1].to == [tenant.owner.email]


def test_the_page_requests_and_removes_recipients(tenant, ask):
    client = Client()
    client.force_login(tenant.owner)
    assert ask(client, OUTSIDE, "/automations/recipients/").status_code == 302
    assert mail.outbox[0].to == [OUTSIDE]
    page = client.get("/automations/").content.decode()
    assert OUTSIDE in page and "waiting for confirmation" in page
    bad = ask(client, "nope", "/automations/recipients/")
    assert bad.status_code == 200 and bad.context["recipient_form"].errors["email"]
    recipient = VerifiedRecipient.objects.get()
    assert client.post(f"/automations/recipients/{recipient.id}/delete/").status_code == 302
    assert not VerifiedRecipient.objects.exists()
    member = Client()
    member.force_login(member_of(tenant.project))
    assert ask(member, OUTSIDE, "/automations/recipients/").status_code == 403


# --- Sending ---------------------------------------------------------------------------------------


def test_a_member_removed_after_the_rule_was_saved_is_not_mailed(tenant):
    leaving = member_of(tenant.project)
    assert tenant.client.post("/api/automations", email_rule([leaving.email, tenant.owner.email]),
                              format="json").status_code == 201  # fmt: skip
    Membership.objects.filter(user=leaving).delete()

    (execution,) = fire(tenant.project)

    assert [message.to for message in mail.outbox] == [[tenant.owner.email]]
    assert execution.status == "succeeded"


def test_a_rule_left_with_no_allowed_recipient_is_skipped_and_says_why(tenant):
    leaving = member_of(tenant.project)
    tenant.client.post("/api/automations", email_rule([leaving.email]), format="json")
    Membership.objects.filter(user=leaving).delete()

    (execution,) = fire(tenant.project)

    assert mail.outbox == []
    assert execution.status == "skipped" and execution.error.startswith("no_recipients")


def test_the_daily_budget_stops_mails_and_logs_the_skip(tenant, settings, ask):
    settings.LEADPULSE_EMAIL_DAILY_BUDGET = 5
    colleague = member_of(tenant.project)
    tenant.client.post("/api/automations", email_rule([tenant.owner.email, colleague.email]), format="json")

    executions = [fire(tenant.project, f"lead-{i}")[0] for i in range(4)]

    # two mails each: the first two firings fit in 5, the third would need 6
    assert len(mail.outbox) == 2 and [m.to for m in mail.outbox] == [[tenant.owner.email, colleague.email]] * 2
    assert [e.status for e in executions] == ["succeeded", "succeeded", "skipped", "skipped"]
    assert executions[2].error.startswith("budget_exhausted") and executions[2].attempts == 1
    listed = tenant.client.get(f"/api/automations/{executions[2].rule_id}/executions").json()["results"]
    assert [e["status"] for e in listed] == ["skipped", "skipped", "succeeded", "succeeded"]
    assert EmailSendDay.objects.get(project=tenant.project).sent == 4
    # a redelivered task does not try again
    services.automation_execute(execution_id=executions[2].id)
    assert len(mail.outbox) == 2
    # verification links come out of the same budget: 4 + 1 = 5, then 429 until tomorrow
    assert ask(tenant.client, OUTSIDE).status_code == 202
    refused = ask(tenant.client, "other@outside.example")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "email_budget_exhausted"
    assert 0 < int(refused["Retry-After"]) <= 86400
    assert len(mail.outbox) == 3


def test_the_budget_is_per_project(tenant, other_tenant, settings):
    settings.LEADPULSE_EMAIL_DAILY_BUDGET = 1
    for each in (tenant, other_tenant):
        each.client.post("/api/automations", email_rule([each.owner.email]), format="json")
        fire(each.project)
    assert sorted(m.to[0] for m in mail.outbox) == sorted([tenant.owner.email, other_tenant.owner.email])


def test_lead_data_cannot_add_recipients_or_headers(tenant):
    tenant.client.post("/api/automations", email_rule([tenant.owner.email]), format="json")

    fire(tenant.project, name="Bea\r\nBcc: victim@evil.example\r\nX-Injected: 1",
         email="x@y.io\nCc: victim@evil.example")  # fmt: skip

    (message,) = mail.outbox
    assert message.to == [tenant.owner.email] and message.cc == [] and message.bcc == []
    assert "\n" not in message.subject and "\r" not in message.subject and "Bea" in message.subject
    parsed = message_from_bytes(message.message().as_bytes())
    assert parsed.get_all("Bcc") is None and parsed.get_all("Cc") is None and parsed.get_all("X-Injected") is None
    assert parsed["To"] == tenant.owner.email


@pytest.mark.django_db(transaction=True)
def test_the_budget_holds_under_concurrent_workers(tenant, settings):
    settings.LEADPULSE_EMAIL_DAILY_BUDGET = 10

    def spend(_):
        try:
            return services.email_budget_spend(project_id=tenant.project.id, count=1)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        granted = list(pool.map(spend, range(30)))

    assert granted.count(True) == 10
    assert EmailSendDay.objects.get(project=tenant.project).sent == 10
