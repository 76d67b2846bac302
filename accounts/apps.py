from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AccountsConfig(AppConfig):
    name = "accounts"


class AdminConfig(admin_apps.AdminConfig):
    """Django's admin on our `AdminSite`, whose sign-in counts against the sign-in limits.

    Listed in INSTALLED_APPS in place of `django.contrib.admin`; `default = False` keeps it from
    being taken for the accounts app's own config.
    """

    default = False
    default_site = "accounts.admin_site.AdminSite"
