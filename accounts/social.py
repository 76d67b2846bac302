"""A step of social-auth's pipeline: a user who signs up with Google gets their own project."""

from typing import Any

from .models import User
from .services import project_create


def project_for_new_user(*, user: User | None = None, is_new: bool = False, **kwargs: Any) -> None:
    if user is not None and is_new and not user.memberships.exists():
        domain = user.email.split("@")[-1]
        project_create(owner=user, name=f"{user.name or domain}'s project", domain=domain)
