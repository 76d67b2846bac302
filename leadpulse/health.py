"""Liveness of the pieces the pipeline needs: database, Redis, a worker."""

from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Max, Min
from django.utils import timezone

HEARTBEAT_KEY = "lp:worker-heartbeat"


def worker_heartbeat_record(*, hostname: str) -> None:
    """Called by every worker on a timer (see `leadpulse.celery.HeartbeatStep`)."""
    cache.set(
        HEARTBEAT_KEY,
        {"hostname": hostname, "at": timezone.now().isoformat()},
        timeout=settings.LEADPULSE_WORKER_HEARTBEAT_SECONDS * 3,
    )


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception:
        return "down"


def _redis() -> str:
    if not settings.REDIS_URL:
        return "embedded"
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1).ping()
        return "ok"
    except (OSError, redis.RedisError):
        return "down"


def _worker() -> dict[str, Any]:
    try:
        beat = cache.get(HEARTBEAT_KEY)
    except Exception:
        beat = None
    if not beat:
        return {"status": "down", "lastHeartbeat": None}
    return {"status": "ok", "lastHeartbeat": beat["at"]}


def _pipeline(project_id: int) -> dict[str, Any]:
    """Beat's last run, queue depth, and the project's oldest unscored event and dead letters."""
    from django_celery_beat.models import PeriodicTask

    from core.models import FailedJob
    from ingest.models import Event

    try:
        last_beat = PeriodicTask.objects.aggregate(last=Max("last_run_at"))["last"]
        unscored = Event.objects.filter(project_id=project_id, processed_at__isnull=True)
        oldest = unscored.aggregate(oldest=Min("received_at"))["oldest"]
        dead = FailedJob.objects.filter(project_id=project_id, replayed_at__isnull=True).count()
    except Exception:
        return {}
    depth: int | None = None
    if settings.REDIS_URL:
        import redis

        try:
            depth = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1).llen("celery")
        except (redis.RedisError, OSError):
            depth = None
    return {
        "beatLastRunAt": last_beat.isoformat() if last_beat else None,
        "queueDepth": depth,
        "oldestUnprocessedSeconds": round((timezone.now() - oldest).total_seconds(), 1) if oldest else 0,
        "deadLetters": dead,
    }


def system_health(*, project_id: int | None = None) -> dict[str, Any]:
    """`{status, database, redis, worker}`; with a project (signed-in pages) also its pipeline figures.

    The unauthenticated `/api/health` gets no project: it tells nothing about anyone's data.
    """
    database, redis_state, worker = _database(), _redis(), _worker()
    healthy = database == "ok" and redis_state in ("ok", "embedded") and worker["status"] == "ok"
    health: dict[str, Any] = {
        "status": "ok" if healthy else "degraded",
        "database": database,
        "redis": redis_state,
        "worker": worker,
    }
    if project_id is not None and database == "ok":
        health["pipeline"] = _pipeline(project_id)
    return health
