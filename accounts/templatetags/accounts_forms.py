"""Accounts' forms for pages other apps render (e.g. the invite form on the integrations page)."""

from django import template

from accounts.forms import InviteForm

register = template.Library()


@register.inclusion_tag("accounts/invite_fields.html")
def invite_fields() -> dict[str, InviteForm]:
    """The fields of the invite form (its <form> and button stay with the page)."""
    return {"invite_form": InviteForm()}
