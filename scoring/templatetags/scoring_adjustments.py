"""How the lead page names a manual adjustment in its timeline."""

from typing import TYPE_CHECKING

from django import template

from scoring.selectors import adjustment_summary

if TYPE_CHECKING:
    from ingest.models import Event

register = template.Library()


@register.filter
def adjustment_label(event: "Event") -> str:
    """`Manual -20 by ana@example.com: disqualified` (U+2212 minus) for an adjustment event; "" for any other."""
    summary = adjustment_summary(event)
    return summary["label"] if summary else ""
