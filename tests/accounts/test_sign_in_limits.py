"""Every way in counts against the same limits: /login/, /admin/login/ and the password-reset mail."""

from types import SimpleNamespace

import django_ratelimit.core
import pytest
from django.core import mail
from django.test import Client

from accounts.models import User
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _frozen_windows(monkeypatch):
    """Hold django-ratelimit's clock still, so no window ends in the middle of a test."""
    monkeypatch.setattr(django_ratelimit.core, "time", SimpleNamespace(time=lambda: 1_800_000_000.5))


@pytest.fixture
def staff():
    return User.objects.create_superuser(email="root@example.com", password=PASSWORD)


def admin_login(client: Client, email: str, password: str):
    return client.post("/admin/login/?next=/admin/", {"username": email, "password": password, "next": "/admin/"})


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def assert_limited(response) -> None:
    assert response.status_code == 429, response.content[:300]
    assert int(response["Retry-After"]) >= 1
    assert b"Too many" in response.content


def test_the_admin_sign_in_is_limited_per_ip_even_for_the_right_password(settings, staff):
    settings.LEADPULSE_RATE_LOGIN_IP = "3/m"
    client = Client(REMOTE_ADDR="10.0.0.1")
    for _ in range(3):
        assert admin_login(client, staff.email, "wrong").status_code == 200
    # when: the right password, same IP
    response = admin_login(client, staff.email, PASSWORD)
    # then
    assert_limited(response)
    assert not signed_in(client)
    assert client.get("/admin/").status_code == 302  # to the sign-in page
    other = Client(REMOTE_ADDR="10.0.0.2")
    assert admin_login(other, staff.email, PASSWORD).status_code == 302 and signed_in(other)


def test_the_admin_sign_in_is_limited_per_account_across_ips(settings, staff):
    settings.LEADPULSE_RATE_LOGIN_ACCOUNT = "2/m"
    assert admin_login(Client(REMOTE_ADDR="10.0.0.1"), staff.email, "wrong").status_code == 200
    assert admin_login(Client(REMOTE_ADDR="10.0.0.2"), staff.email.upper(), "wrong").status_code == 200
    client = Client(REMOTE_ADDR="10.0.0.3")
    assert_limited(admin_login(client, staff.email, PASSWORD))
    assert not signed_in(client)


def test_the_dashboard_and_admin_sign_ins_share_one_allowance(settings, staff):
    settings.LEADPULSE_RATE_LOGIN_ACCOUNT = "2/m"
    Client(REMOTE_ADDR="10.0.0.1").post("/login/", {"username": staff.email, "password": "wrong"})
    Client(REMOTE_ADDR="10.0.0.2").post("/api/auth/login", {"email": staff.email, "password": "wrong"},
                                        content_type="application/json")  # fmt: skip
    assert_limited(admin_login(Client(REMOTE_ADDR="10.0.0.3"), staff.email, PASSWORD))


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_a_refused_attempt_does_not_tell_whether_its_password_was_right(settings, staff, path):
    settings.LEADPULSE_RATE_LOGIN_IP = "1/m"
    client = Client(REMOTE_ADDR="10.0.0.1")
    client.post(path, {"username": staff.email, "password": "wrong"})
    # when: past the limit, a wrong and a right password
    wrong = client.post(path, {"username": staff.email, "password": "wrong"})
    right = client.post(path, {"username": staff.email, "password": PASSWORD})
    # then: the same refusal, not an answer about the password
    assert_limited(wrong)
    assert_limited(right)
    for response in (wrong, right):
        assert b"correct email" not in response.content.lower() and b"errornote" not in response.content
    assert not signed_in(client)


def reset(email: str, ip: str = "127.0.0.1"):
    return Client(REMOTE_ADDR=ip).post("/password-reset/", {"email": email})


def test_password_reset_requests_are_limited_per_ip(settings):
    settings.LEADPULSE_RATE_LOGIN_IP = "3/m"
    user = UserFactory()
    for n in range(3):
        assert reset(f"nobody{n}@example.com").status_code == 302
    # when
    response = reset(user.email)
    # then: refused, and no mail
    assert_limited(response)
    assert mail.outbox == []
    assert reset(user.email, ip="10.0.0.9").status_code == 302
    assert len(mail.outbox) == 1


def test_password_reset_mail_to_one_address_is_limited_across_ips_without_telling_who_has_an_account(settings):
    settings.LEADPULSE_RATE_PASSWORD_RESET_ACCOUNT = "2/h"
    victim = UserFactory()
    # when: five requests for the victim, each from another IP, and five for an address with no account
    victim_statuses = [reset(victim.email.upper() if n % 2 else victim.email, ip=f"10.0.1.{n}").status_code
                       for n in range(5)]  # fmt: skip
    nobody_statuses = [reset("nobody@example.com", ip=f"10.0.2.{n}").status_code for n in range(5)]
    # then: two mails reach the victim; the answers are the same whether or not the account exists
    assert len(mail.outbox) == 2 and all(message.to == [victim.email] for message in mail.outbox)
    assert victim_statuses == nobody_statuses == [302, 302, 429, 429, 429]
    assert reset(UserFactory().email).status_code == 302  # others are not affected
    assert len(mail.outbox) == 3


def test_the_password_reset_account_limit_holds_by_default(settings):
    victim = UserFactory()
    for n in range(25):
        reset(victim.email, ip=f"10.0.3.{n}")
    assert 1 <= len(mail.outbox) <= 5
