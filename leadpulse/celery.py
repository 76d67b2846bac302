"""Celery application: configured from Django settings (CELERY_ namespace)."""

from celery import Celery, bootsteps, signals

from leadpulse.boot import settings_load, settings_module_default

settings_module_default()  # before the app: Celery's Django fix-up looks for it

app = Celery("leadpulse")
# The app of every thread: the bottom layer and the apps send tasks through `celery.current_app`,
# never importing this wiring module (a thread other than the one that made the app would get
# Celery's unconfigured default app otherwise).
app.set_default()
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_configure.connect
def settings_check(sender, **kwargs):
    """Load the settings as Celery first reads its configuration: a misconfiguration is one line, not a traceback."""
    settings_load()


class HeartbeatStep(bootsteps.StartStopStep):
    """Record that this worker is alive, for /api/health and the system page."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        self.tref = None

    def start(self, parent):
        from django.conf import settings

        from leadpulse.health import worker_heartbeat_record

        worker_heartbeat_record(hostname=parent.hostname)
        self.tref = parent.timer.call_repeatedly(
            settings.LEADPULSE_WORKER_HEARTBEAT_SECONDS,
            worker_heartbeat_record,
            kwargs={"hostname": parent.hostname},
        )

    def stop(self, parent):
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None


app.steps["worker"].add(HeartbeatStep)


@signals.task_prerun.connect
def task_prerun(**kwargs):
    from core.logs import task_started

    task_started(**kwargs)
    _connections_release(kwargs["task"])


@signals.task_postrun.connect
def task_postrun(**kwargs):
    from core.logs import task_ended

    task_ended(**kwargs)
    _connections_release(kwargs["task"])


def _connections_release(task) -> None:
    """Around each task, what Django does around each request: a connection past CONN_MAX_AGE (0: every one) or
    broken goes back to the process's pool, which checks it before handing it out again.

    Celery's Django fix-up would close the whole pool instead, before and after every task of a prefork worker,
    so each task opened a new PostgreSQL connection (a server process, authentication, the session's time
    zone): `CELERY_DB_REUSE_MAX` (settings) keeps it from doing so.
    """
    if getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


@signals.worker_process_init.connect
def worker_process_init(**kwargs):
    """A prefork child replacing one that died: fold the dead one's metric files away."""
    from core.metrics import multiprocess_compact

    multiprocess_compact()
