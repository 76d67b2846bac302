from django.apps import AppConfig


class LeadpulseConfig(AppConfig):
    """The wiring layer above the apps: URLs, ASGI routing, the dashboard shell, management commands."""

    name = "leadpulse"
    label = "wiring"  # "leadpulse" is the core app's (see core/apps.py)
    verbose_name = "LeadPulse"
