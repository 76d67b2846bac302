"""What other apps may rely on from ingest, besides its services and selectors."""

from .schema import EVENT_NAME_RE


def event_name_valid(value: str) -> bool:
    """Whether `value` is an event name ingest accepts (what a rule's event type must look like)."""
    return bool(EVENT_NAME_RE.fullmatch(value))
