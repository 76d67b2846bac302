from django.apps import AppConfig


class LeadpulseConfig(AppConfig):
    name = "leadpulse"
    verbose_name = "LeadPulse core"
