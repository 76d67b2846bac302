from celery import shared_task

from . import services


@shared_task(name="accounts.expired_tokens_flush_task")
def expired_tokens_flush_task() -> int:
    """Forget refresh tokens past their expiry and their blacklist rows (celery-beat, daily)."""
    return services.expired_tokens_flush()
