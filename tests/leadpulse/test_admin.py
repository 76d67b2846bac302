"""Every model registered in the admin lists and opens its add page for a superuser (columns, filters, search)."""

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from tests.accounts.factories import UserFactory
from tests.scoring.factories import scored_lead

pytestmark = pytest.mark.django_db

REGISTERED = sorted(admin.site._registry, key=lambda model: model._meta.label)


@pytest.fixture
def superuser_client(tenant):
    scored_lead(tenant.project, "admin-lead", "signup", email="ada@acme-corp.example")  # rows to list
    user = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label)
def test_the_changelist_of_every_registered_model_loads(superuser_client, model):
    meta = model._meta
    url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
    assert superuser_client.get(url).status_code == 200
    assert superuser_client.get(url, {"q": "x"}).status_code == 200
