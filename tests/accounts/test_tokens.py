"""Revocable JWTs: single-use refresh tokens, logout, and every token dies with a password change or deactivation."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing.websocket import WebsocketCommunicator
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from leadpulse.asgi import application
from tests.accounts.factories import UserFactory, project_with_owner
from tests.sockets import refused_or_open

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "an0ther-long-pass"


def sign_in(user: User, password: str = PASSWORD) -> dict:
    response = APIClient().post("/api/auth/login", {"email": user.email, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def refresh(token: str):
    return APIClient().post("/api/auth/refresh", {"refresh": token}, format="json")


def me(access: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client.get("/api/auth/me")


def assert_token_refused(response) -> None:
    assert response.status_code == 401, response.content
    assert response.json()["error"]["code"] == "token_not_valid", response.json()


def test_a_refresh_token_works_once_and_is_replaced():
    tokens = sign_in(UserFactory())
    # when
    first = refresh(tokens["refresh"])
    second = refresh(tokens["refresh"])
    # then: the first use rotates it, the second is refused
    assert first.status_code == 200, first.content
    assert set(first.json()) == {"access", "refresh"} and first.json()["refresh"] != tokens["refresh"]
    assert_token_refused(second)
    assert me(first.json()["access"]).status_code == 200
    assert refresh(first.json()["refresh"]).status_code == 200


def test_logout_revokes_the_refresh_token():
    tokens = sign_in(UserFactory())
    response = APIClient().post("/api/auth/logout", {"refresh": tokens["refresh"]}, format="json")
    assert response.status_code == 205, response.content
    assert_token_refused(refresh(tokens["refresh"]))
    assert_token_refused(APIClient().post("/api/auth/logout", {"refresh": tokens["refresh"]}, format="json"))


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [({}, 400, "refresh"), ({"refresh": 7}, 400, "refresh"), ({"refresh": "not-a-jwt"}, 401, "")],
)
def test_logout_refuses_what_is_not_a_refresh_token(body, status, field):
    response = APIClient().post("/api/auth/logout", body, format="json")
    assert response.status_code == status, response.content
    assert (field in response.json()["error"]["fields"]) if field else response.json()["error"]["fields"] == {}


def test_an_access_token_is_not_a_refresh_token():
    tokens = sign_in(UserFactory())
    assert_token_refused(refresh(tokens["access"]))
    assert_token_refused(APIClient().post("/api/auth/logout", {"refresh": tokens["access"]}, format="json"))


def change_by_reset(user: User) -> None:
    """Django's reset flow, as a person follows it: request, mail, link, new password."""
    from django.core import mail

    client = Client()
    client.post("/password-reset/", {"email": user.email})
    link = next(line for line in mail.outbox[-1].body.splitlines() if "/password-reset/" in line)
    form = client.get(link.split("testserver")[1], follow=True)
    done = client.post(form.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done.status_code == 302 and done["Location"] == "/password-reset/done/"


def change_in_the_admin(user: User) -> None:
    admin = User.objects.create_superuser(email="root@example.com", password=PASSWORD)
    client = Client()
    client.force_login(admin)
    done = client.post(
        f"/admin/accounts/user/{user.pk}/password/", {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )
    assert done.status_code == 302, done.content


def change_in_code(user: User) -> None:
    """As `manage.py changepassword` or a shell does."""
    user = User.objects.get(pk=user.pk)
    user.set_password(NEW_PASSWORD)
    user.save()


@pytest.mark.parametrize("change", [change_by_reset, change_in_the_admin, change_in_code])
def test_a_password_change_revokes_every_token_issued_before_it(change):
    user = UserFactory()
    tokens = sign_in(user)
    other_session = sign_in(user)
    assert me(tokens["access"]).status_code == 200
    # when
    change(user)
    # then: access and refresh tokens of every earlier sign-in are refused
    assert_token_refused(me(tokens["access"]))
    assert_token_refused(refresh(tokens["refresh"]))
    assert_token_refused(me(other_session["access"]))
    assert_token_refused(refresh(other_session["refresh"]))
    # and signing in with the new password gives working tokens
    fresh = sign_in(user, NEW_PASSWORD)
    assert me(fresh["access"]).status_code == 200
    assert refresh(fresh["refresh"]).status_code == 200


def test_a_deactivated_users_tokens_are_refused():
    user = UserFactory()
    tokens = sign_in(user)
    # when
    User.objects.filter(pk=user.pk).update(is_active=False)
    # then
    assert me(tokens["access"]).status_code == 401
    assert refresh(tokens["refresh"]).status_code == 401
    assert APIClient().post("/api/auth/logout", {"refresh": tokens["refresh"]}, format="json").status_code == 205


def test_a_deleted_users_refresh_token_is_401_not_500():
    user = UserFactory()
    tokens = sign_in(user)
    user.delete()
    assert refresh(tokens["refresh"]).status_code == 401
    assert me(tokens["access"]).status_code == 401


@pytest.mark.django_db(transaction=True)
def test_a_websocket_with_an_access_token_issued_before_a_password_change_is_refused():
    _project, owner, _ = project_with_owner(name="Mine")
    access = sign_in(owner)["access"]

    async def connects() -> bool:
        for path, protocols in ((f"/ws/project/?token={access}", None), ("/ws/project/", [f"bearer.{access}"])):
            socket = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://localhost")],
                                           subprotocols=protocols)  # fmt: skip
            connected, _ = await refused_or_open(socket)
            await socket.disconnect()
            if not connected:
                return False
        return True

    assert async_to_sync(connects)()
    change_in_code(owner)
    assert not async_to_sync(connects)()


def test_expired_refresh_tokens_are_forgotten_daily():
    from datetime import timedelta

    from django.utils import timezone
    from django_celery_beat.models import PeriodicTask
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

    from accounts.tasks import expired_tokens_flush_task

    task = PeriodicTask.objects.get(task=expired_tokens_flush_task.name)
    assert task.enabled and (task.interval.every, task.interval.period) == (1, "days")
    tokens = sign_in(UserFactory())
    refresh(tokens["refresh"])  # spent: blacklisted
    live = sign_in(UserFactory())
    OutstandingToken.objects.exclude(token=live["refresh"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    # when
    expired_tokens_flush_task()
    # then
    assert list(OutstandingToken.objects.values_list("token", flat=True)) == [live["refresh"]]
    assert not BlacklistedToken.objects.exists()
    assert refresh(live["refresh"]).status_code == 200
