"""Invitations: a pending offer with an emailed, expiring link; nothing changes for the invitee until they accept."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Invitation, Membership, User
from accounts.selectors import membership_for_user
from tests.accounts.factories import UserFactory, project_with_owner
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
LINK = re.compile(r"http://testserver(/invitations/[A-Za-z0-9_-]+/)")


def browser(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def invite(tenant, mailoutbox, django_capture_on_commit_callbacks):
    """Invite from the dashboard as the tenant's owner; return the emailed link's path."""

    def send(email: str, role: str = "member", by=None) -> str:
        before = len(mailoutbox)
        with django_capture_on_commit_callbacks(execute=True):
            response = browser(by or tenant.owner).post("/projects/invite/", {"email": email, "role": role})
        assert response.status_code == 302, response.content
        assert len(mailoutbox) == before + 1 and mailoutbox[-1].to == [email.lower()]
        return LINK.search(mailoutbox[-1].body).group(1)

    return send


def test_inviting_an_unknown_address_creates_no_account_and_no_membership(tenant, invite):
    users = User.objects.count()
    # when
    link = invite("Mate@X.io", "admin")
    # then: a pending invitation and an email, nothing else
    assert User.objects.count() == users
    assert not Membership.objects.filter(user__email="mate@x.io").exists()
    invitation = Invitation.objects.get(project=tenant.project)
    assert (invitation.email, invitation.role, invitation.status) == ("mate@x.io", "admin", "pending")
    assert invitation.expires_at - timezone.now() > timedelta(days=6)
    assert link.split("/")[2] not in invitation.token_hash  # stored hashed
    # and the address can still register, as anyone can
    response = Client().post("/register/", {"email": "mate@x.io", "password": "s3cure-enough-pass"})
    assert response.status_code == 302


def test_inviting_an_existing_user_changes_nothing_for_them_until_they_accept(tenant, invite):
    own_project, someone, _ = project_with_owner(name="Their own")
    invite(someone.email)
    assert not Membership.objects.filter(user=someone, project=tenant.project).exists()
    assert membership_for_user(user=someone).project == own_project
    assert b"Tenant A" not in browser(someone).get("/").content


def test_a_new_teammate_registers_with_the_invited_address_then_accepts(tenant, invite):
    link = invite("new@x.io", "admin")
    client = Client()
    # the link leads to the invitation, its token kept out of the address bar
    opened = client.get(link)
    assert opened.status_code == 302 and opened["Location"] == "/invitations/accept/"
    page = client.get("/invitations/accept/")
    assert page.status_code == 200 and b"Tenant A" in page.content and b"new@x.io" in page.content
    # registration is pre-filled with the invited address
    form = client.get("/register/").content.decode()
    assert 'value="new@x.io"' in form
    registered = client.post("/register/", {"email": "new@x.io", "password": "s3cure-enough-pass"})
    assert registered["Location"] == "/invitations/accept/"
    user = User.objects.get(email="new@x.io")
    assert not Membership.objects.filter(user=user, project=tenant.project).exists()  # not before accepting
    # when
    accepted = client.post("/invitations/accept/")
    # then
    assert accepted.status_code == 302 and accepted["Location"] == "/"
    assert Membership.objects.get(user=user, project=tenant.project).role == "admin"
    assert b"Tenant A" in client.get("/").content  # the session switched to the joined project
    assert Invitation.objects.get().status == "accepted"


def test_an_existing_user_signs_in_then_accepts(tenant, invite):
    someone = UserFactory()
    link = invite(someone.email)
    client = Client()
    client.get(link)
    page = client.get("/invitations/accept/").content.decode()
    assert "/login/?next=/invitations/accept/" in page
    signed_in = client.post("/login/?next=/invitations/accept/", {"username": someone.email, "password": PASSWORD,
                                                                  "next": "/invitations/accept/"})  # fmt: skip
    assert signed_in["Location"] == "/invitations/accept/"
    assert b"Accept and join Tenant A" in client.get("/invitations/accept/").content
    client.post("/invitations/accept/")
    assert Membership.objects.get(user=someone, project=tenant.project).role == "member"


def test_only_the_invited_address_can_accept(tenant, invite):
    link = invite("mate@x.io")
    intruder = UserFactory()
    client = browser(intruder)
    client.get(link)
    page = client.get("/invitations/accept/")
    assert b"Only mate@x.io can accept" in page.content and b"Accept and join" not in page.content
    # when: posting anyway
    response = client.post("/invitations/accept/")
    # then
    assert response.status_code == 403
    assert not Membership.objects.filter(user=intruder, project=tenant.project).exists()
    assert Invitation.objects.get().status == "pending"


@pytest.mark.parametrize(
    ("spoil", "status", "words"),
    [
        (lambda i: Invitation.objects.filter(pk=i.pk).update(expires_at=timezone.now()), 410, b"expired"),
        (lambda i: Invitation.objects.filter(pk=i.pk).update(revoked_at=timezone.now()), 410, b"withdrawn"),
        (lambda i: Invitation.objects.filter(pk=i.pk).update(accepted_at=timezone.now()), 410, b"already accepted"),
        (lambda i: Invitation.objects.filter(pk=i.pk).update(token_hash="0" * 64), 404, b"not found"),
    ],
    ids=["expired", "revoked", "used", "unknown"],
)
def test_a_link_that_can_no_longer_be_used_says_why(tenant, invite, spoil, status, words):
    link = invite("mate@x.io")
    spoil(Invitation.objects.get())
    client = browser(User.objects.create_user(email="mate@x.io", password=PASSWORD))
    client.get(link)
    page = client.get("/invitations/accept/")
    assert page.status_code == status and words in page.content
    assert client.post("/invitations/accept/").status_code == status
    assert not Membership.objects.filter(user__email="mate@x.io").exists()


def test_inviting_again_renews_the_invitation_and_retires_the_old_link(tenant, invite):
    first = invite("mate@x.io", "member")
    second = invite("MATE@x.io", "admin")
    invitation = Invitation.objects.get()  # one open invitation per address
    assert invitation.role == "admin" and first != second
    client = browser(User.objects.create_user(email="mate@x.io", password=PASSWORD))
    client.get(first)
    assert client.post("/invitations/accept/").status_code == 404
    client.get(second)
    assert client.post("/invitations/accept/").status_code == 302
    assert Membership.objects.get(user__email="mate@x.io", project=tenant.project).role == "admin"


def test_admins_see_pending_invitations_and_revoke_them(tenant, other_tenant, invite):
    link = invite("mate@x.io")
    page = browser(tenant.owner).get("/integrations/").content.decode()
    assert "Pending invitations" in page and "mate@x.io" in page
    invitation = Invitation.objects.get()
    member = UserFactory()
    Membership.objects.create(user=member, project=tenant.project, role="member")
    assert "mate@x.io" not in browser(member).get("/integrations/").content.decode()
    assert browser(member).post(f"/projects/invitations/{invitation.id}/revoke/").status_code == 403
    assert browser(other_tenant.owner).post(f"/projects/invitations/{invitation.id}/revoke/").status_code == 404
    # when
    browser(tenant.owner).post(f"/projects/invitations/{invitation.id}/revoke/")
    # then
    assert Invitation.objects.get().status == "revoked"
    assert "mate@x.io" not in browser(tenant.owner).get("/integrations/").content.decode()
    client = browser(User.objects.create_user(email="mate@x.io", password=PASSWORD))
    client.get(link)
    assert client.post("/invitations/accept/").status_code == 410


def test_invitations_never_change_a_members_role_nor_grant_ownership(tenant, mailoutbox):
    admin = UserFactory()
    Membership.objects.create(user=admin, project=tenant.project, role="admin")
    client = browser(admin)
    refused = client.post("/projects/invite/", {"email": tenant.owner.email, "role": "member"}, follow=True)
    assert b"already a member" in refused.content
    client.post("/projects/invite/", {"email": "new@x.io", "role": "owner"})
    assert Membership.objects.get(user=tenant.owner, project=tenant.project).role == "owner"
    assert not Invitation.objects.exists() and mailoutbox == []


# --- The API ----------------------------------------------------------------------------------------------------------


def test_the_api_invites_lists_revokes_and_the_invitee_accepts(tenant, mailoutbox, django_capture_on_commit_callbacks):
    url = f"/api/projects/{tenant.project.id}/invitations"
    with django_capture_on_commit_callbacks(execute=True):
        created = tenant.client.post(url, {"email": "Api@X.io", "role": "admin"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["email"] == "api@x.io" and body["role"] == "admin" and body["status"] == "pending"
    assert body["invitedBy"] == tenant.owner.email and "token" not in body
    assert [item["id"] for item in tenant.client.get(url).json()["results"]] == [body["id"]]
    assert not User.objects.filter(email="api@x.io").exists()
    token = LINK.search(mailoutbox[-1].body).group(1).split("/")[2]
    # the invitee registers with the API and accepts
    invitee = APIClient()
    session = invitee.post("/api/auth/register", {"email": "api@x.io", "password": "s3cure-enough-pass"}, format="json")
    invitee.credentials(HTTP_AUTHORIZATION=f"Bearer {session.json()['access']}")
    stranger = client_for(UserFactory())
    refused = stranger.post("/api/invitations/accept", {"token": token}, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "invitation_for_another_user"
    accepted = invitee.post("/api/invitations/accept", {"token": token}, format="json")
    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["id"] == tenant.project.id and accepted.json()["role"] == "admin"
    again = invitee.post("/api/invitations/accept", {"token": token}, format="json")
    assert again.status_code == 410 and again.json()["error"]["code"] == "invitation_accepted"
    assert tenant.client.get(url).json()["results"] == []


def test_the_api_revokes_an_invitation(tenant, mailoutbox, django_capture_on_commit_callbacks):
    url = f"/api/projects/{tenant.project.id}/invitations"
    with django_capture_on_commit_callbacks(execute=True):
        invitation_id = tenant.client.post(url, {"email": "mate@x.io"}, format="json").json()["id"]
    token = LINK.search(mailoutbox[-1].body).group(1).split("/")[2]
    assert tenant.client.delete(f"{url}/{invitation_id}").status_code == 204
    assert tenant.client.delete(f"{url}/{invitation_id}").status_code == 204
    invitee = client_for(User.objects.create_user(email="mate@x.io", password=PASSWORD))
    response = invitee.post("/api/invitations/accept", {"token": token}, format="json")
    assert response.status_code == 410 and response.json()["error"]["code"] == "invitation_revoked"


def test_the_api_refuses_to_invite_a_member(tenant):
    response = tenant.client.post(
        f"/api/projects/{tenant.project.id}/invitations", {"email": tenant.owner.email.upper()}, format="json"
    )
    assert response.status_code == 409 and response.json()["error"]["code"] == "already_member"
    assert "email" in response.json()["error"]["fields"]


def test_another_projects_invitation_is_404_under_an_own_project_url(tenant, other_tenant):
    from tests.accounts.factories import invitation_with_token

    theirs, _ = invitation_with_token(project=other_tenant.project, email="x@x.io", invited_by=other_tenant.owner)
    response = tenant.client.delete(f"/api/projects/{tenant.project.id}/invitations/{theirs.id}")
    assert response.status_code == 404
    assert Invitation.objects.get(pk=theirs.pk).status == "pending"
