from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    # The label the dead-letter store was created under, kept so that its table, migrations,
    # content type and admin URLs stay what they were when this code lived in `leadpulse/`.
    label = "leadpulse"
    verbose_name = "LeadPulse core"

    def ready(self) -> None:
        from core.metrics import multiprocess_compact
        from core.sql import lookups_register

        lookups_register()  # `__any_of`: a batch's ids as one array parameter
        multiprocess_compact()  # every process that starts Django: uvicorn workers, Celery, beat
