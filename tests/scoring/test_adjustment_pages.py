"""The lead page's adjustment form: a server-side form that posts to the same service as the API."""

import pytest

from accounts.models import Membership
from ingest.models import Event, Lead
from scoring.models import LeadScore, ScoringModel
from scoring.services.models import scoring_model_create
from tests.accounts.factories import UserFactory
from tests.scoring.factories import scored_lead
from tests.scoring.test_pages import browser

pytestmark = pytest.mark.django_db


@pytest.fixture
def lead(tenant):
    return scored_lead(tenant.project, "page-1", "signup", "demo_request")  # 80


def post(client, lead, **data):
    return client.post(f"/leads/{lead.id}/adjustments/", {"change": "points", "model": "default", **data})


def test_a_member_adjusts_from_the_lead_page_and_sees_it_there(tenant, lead):
    member = UserFactory()
    Membership.objects.create(user=member, project=tenant.project, role=Membership.Role.MEMBER)
    client = browser(member)
    # the page offers the form, the primary model chosen
    page = client.get(f"/leads/{lead.id}/").content.decode()
    assert 'id="adjust-form"' in page and f'action="/leads/{lead.id}/adjustments/"' in page
    # when
    response = post(client, lead, value="-20", reason="disqualified, student")
    # then: back on the lead page, with the adjustment in its list, timeline and breakdown
    assert response.status_code == 302 and response["Location"] == f"/leads/{lead.id}/"
    assert Lead.objects.get(id=lead.id).current_score == 60
    page = client.get(f"/leads/{lead.id}/").content.decode()
    label = f"Manual \u221220 by {member.email}: disqualified, student"
    assert page.count(label) == 4  # the success message, the list, the timeline, the breakdown
    assert Event.objects.get(type=Event.Type.ADJUSTMENT).properties["author"] == {
        "type": "user", "id": member.id, "label": member.email}  # fmt: skip


def test_reset_sets_the_engagement_score(tenant, lead):
    response = post(browser(tenant.owner), lead, change="setTo", value="0", reason="bounced")
    assert response.status_code == 302
    assert Lead.objects.get(id=lead.id).current_score == 0


def test_another_model_is_chosen_in_the_select_and_the_page_shows_that_model(tenant, lead):
    primary = ScoringModel.objects.get(project=tenant.project, is_primary=True)
    sales = scoring_model_create(project=tenant.project, data={"key": "sales", "name": "Sales"}, copy_from=primary)
    client = browser(tenant.owner)
    post(client, lead, value="1", reason="fold both")
    response = post(client, lead, model="sales", value="-30", reason="not for sales")
    assert response.status_code == 302 and response["Location"] == f"/leads/{lead.id}/?model=sales"
    assert LeadScore.objects.get(lead=lead, model=sales).score == 50  # its own adjustment only
    assert Lead.objects.get(id=lead.id).current_score == 81
    # and the lead page under sales explains its score: the breakdown is sales', with its adjustment
    page = client.get(f"/leads/{lead.id}/?model=sales")
    breakdown = page.context["breakdown"]
    assert [a["reason"] for a in breakdown["adjustments"]] == ["not for sales"]
    assert breakdown["currentScore"] == 50
    section = page.content.decode().split('id="breakdown"', 1)[1].split("</section>", 1)[0]
    assert f"Manual \u221230 by {tenant.owner.email}: not for sales" in section


def test_a_bad_adjustment_of_another_model_shows_the_page_of_that_model_with_the_error(tenant, lead):
    primary = ScoringModel.objects.get(project=tenant.project, is_primary=True)
    scoring_model_create(project=tenant.project, data={"key": "sales", "name": "Sales"}, copy_from=primary)
    # when a person on the page of model sales posts an adjustment of it without a reason
    response = post(browser(tenant.owner), lead, model="sales", value="-30", reason="")
    # then the page comes back under sales (its score, breakdown and switcher), the error beside the reason
    assert response.status_code == 400
    assert response.context["switcher"]["choice"].model.key == "sales"
    assert response.context["adjustment_form"]["model"].value() == "sales"
    assert 'data-error-for="reason"' in response.content.decode()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"value": "0", "reason": "x"}, "value"),
        ({"value": "5", "reason": ""}, "reason"),
        ({"value": "5", "reason": "x" * 501}, "reason"),
        ({"value": "5", "reason": "x", "model": "theirs"}, "model"),
        ({"value": "-1", "reason": "x", "change": "setTo"}, "value"),
        ({"value": "abc", "reason": "x"}, "value"),
    ],
)
def test_a_bad_adjustment_is_shown_with_its_error_and_not_stored(tenant, other_tenant, lead, data, field):
    scoring_model_create(project=other_tenant.project, data={"key": "theirs", "name": "Theirs"})
    response = post(browser(tenant.owner), lead, **data)
    assert response.status_code == 400
    assert f'data-error-for="{field}"' in response.content.decode()
    assert not Event.objects.filter(type=Event.Type.ADJUSTMENT).exists()


def test_another_project_s_lead_is_404_and_sign_in_is_required(tenant, other_tenant, lead):
    assert post(browser(other_tenant.owner), lead, value="5", reason="x").status_code == 404
    from django.test import Client

    response = post(Client(), lead, value="5", reason="x")
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert browser(tenant.owner).get(f"/leads/{lead.id}/adjustments/").status_code == 405
    assert not Event.objects.filter(type=Event.Type.ADJUSTMENT).exists()


def test_a_form_sent_twice_adjusts_once(tenant, lead):
    client = browser(tenant.owner)
    page = client.get(f"/leads/{lead.id}/")
    token = page.context["adjustment_form"]["token"].initial
    assert f'name="token" value="{token}"' in page.content.decode()
    # when the same rendered form is sent twice (a double click, a resend after a timeout)
    first = post(client, lead, value="-20", reason="student", token=token)
    again = post(client, lead, value="-20", reason="student", token=token)
    # then
    assert first.status_code == again.status_code == 302
    assert Lead.objects.get(id=lead.id).current_score == 60
    assert Event.objects.filter(type=Event.Type.ADJUSTMENT).count() == 1
    assert "made already" in client.get(f"/leads/{lead.id}/").content.decode()
    # a new rendering of the form is a new adjustment
    fresh = client.get(f"/leads/{lead.id}/").context["adjustment_form"]["token"].initial
    assert fresh != token
