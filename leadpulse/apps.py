from django.apps import AppConfig


class LeadpulseConfig(AppConfig):
    name = "leadpulse"
    verbose_name = "LeadPulse core"

    def ready(self) -> None:
        from leadpulse.metrics import multiprocess_compact

        multiprocess_compact()  # every process that starts Django: uvicorn workers, Celery, beat
