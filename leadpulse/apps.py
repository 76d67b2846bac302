from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class LeadpulseConfig(AppConfig):
    """The wiring layer above the apps: URLs, ASGI routing, the dashboard shell, management commands."""

    name = "leadpulse"
    label = "wiring"  # "leadpulse" is the core app's (see core/apps.py)
    verbose_name = "LeadPulse"

    def ready(self) -> None:
        autodiscover_modules("nav")  # each app's nav.py registers its pages in the dashboard's navigation
