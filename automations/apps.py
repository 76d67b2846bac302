from django.apps import AppConfig


class AutomationsConfig(AppConfig):
    name = "automations"

    def ready(self) -> None:
        from . import triggers  # a registry: each module of it registers one trigger

        triggers.autodiscover()
