from celery import shared_task

from core import pipeline
from core.contracts import LEAD_CHANGES_FANOUT_TASK


@shared_task(name=LEAD_CHANGES_FANOUT_TASK)
def lead_changes_fanout_task(*, parts: list[list]) -> None:
    """A scoring batch's lead changes for each consumer in turn (`pipeline.lead_changes_fanout`)."""
    pipeline.lead_changes_fanout(parts=[(name, kwargs) for name, kwargs in parts])
