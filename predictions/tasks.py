from celery import shared_task
from django.db import OperationalError

from core.contracts import PREDICTION_LEAD_CHANGES_TASK, PREDICTION_MODEL_TRAIN_TASK, LeadChange

from . import services
from .services import training


@shared_task(name=PREDICTION_LEAD_CHANGES_TASK, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def lead_changes_task(*, changes: list[dict]) -> int:
    """Record won outcomes from a scoring batch's folded events, move merged-away leads' outcomes, and recompute the
    probabilities of the leads the batch changed."""
    parsed = [LeadChange.from_message(change) for change in changes]
    written = services.lead_changes_consume(changes=parsed)
    return written + training.lead_changes_predict(changes=parsed)


@shared_task(name=PREDICTION_MODEL_TRAIN_TASK, time_limit=1800, soft_time_limit=1700)
def model_train_task(*, job_id: int) -> str:
    """Run a training job: learn from the project's outcomes, store the model, score the leads."""
    return training.prediction_model_train(job_id=job_id).status


@shared_task(name="predictions.models_retrain_task")
def models_retrain_task() -> int:
    """Retrain every trained model, and train one for each project that has enough outcomes (beat, weekly)."""
    return len(training.models_retrain())
