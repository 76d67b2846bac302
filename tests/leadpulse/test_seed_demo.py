"""`seed_demo` (run by `make run`): a well-known demo password only where DEBUG is on."""

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings

from accounts.models import User
from leadpulse.management.commands.seed_demo import DEMO_EMAIL, DEMO_PASSWORD


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", leads=3, days=2, outcomes=0, stdout=out)  # outcomes and training: tests/predictions
    return out.getvalue()


@pytest.mark.django_db
@override_settings(DEBUG=False)
def test_without_debug_the_demo_account_gets_a_random_password_printed_once():
    # when make run seeds a production-settings deployment
    first = seed()

    # then the printed password works and the well-known one does not
    password = re.search(rf"Demo login:  {re.escape(DEMO_EMAIL)} / (\S+)", first).group(1)
    user = User.objects.get(email=DEMO_EMAIL)
    assert password != DEMO_PASSWORD
    assert user.check_password(password)
    assert not user.check_password(DEMO_PASSWORD)

    # and a second run neither changes nor reprints it
    second = seed()
    assert password not in second
    assert "its password was printed when it was created" in second
    user.refresh_from_db()
    assert user.check_password(password)


@pytest.mark.django_db
@override_settings(DEBUG=True)
def test_on_a_developer_machine_the_demo_login_is_the_documented_one():
    out = seed()
    assert f"Demo login:  {DEMO_EMAIL} / {DEMO_PASSWORD}" in out
    assert User.objects.get(email=DEMO_EMAIL).check_password(DEMO_PASSWORD)
