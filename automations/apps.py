from django.apps import AppConfig


class AutomationsConfig(AppConfig):
    name = "automations"

    def ready(self) -> None:
        from . import actions, triggers  # registries: each module of theirs registers one trigger or action

        triggers.autodiscover()
        actions.autodiscover()
