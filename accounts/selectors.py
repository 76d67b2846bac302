"""Reads for users, projects and keys."""

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.db.models import QuerySet

from leadpulse.errors import Forbidden, NotAuthenticated, NotFound

from .models import ApiKey, Membership, Project, User
from .services import key_hash, write_key_cache_key


@dataclass(frozen=True)
class WriteKeyProject:
    """What ingest needs to know about the project behind a write key (cacheable)."""

    id: int
    is_active: bool


def project_for_write_key(*, raw_key: str | None, field: str = "apiKey") -> WriteKeyProject:
    """Resolve a write key to its project, through the cache; 401 unknown, 403 inactive."""
    if not raw_key or not isinstance(raw_key, str) or len(raw_key) > 128:
        raise NotAuthenticated("A valid write key is required.", field=field, code="invalid_api_key")
    digest = key_hash(raw_key)
    cache_key = write_key_cache_key(digest)
    cached = cache.get(cache_key)
    if cached is None:
        row = (
            ApiKey.objects.filter(key_hash=digest, kind=ApiKey.Kind.WRITE, revoked_at__isnull=True)
            .values_list("project_id", "project__is_active")
            .first()
        )
        # Unknown keys are cached too (briefly), so random keys cannot hammer the database.
        cached = row or (0, False)
        cache.set(cache_key, cached, settings.LEADPULSE_WRITE_KEY_CACHE_SECONDS if row else 10)
    project_id, is_active = cached
    if not project_id:
        raise NotAuthenticated("Invalid write key.", field=field, code="invalid_api_key")
    if not is_active:
        raise Forbidden("This project is inactive.", code="project_inactive")
    return WriteKeyProject(id=project_id, is_active=is_active)


def write_key_for_project(*, project: Project) -> str:
    key = ApiKey.objects.filter(project=project, kind=ApiKey.Kind.WRITE, revoked_at__isnull=True).first()
    return key.key if key else ""


def membership_for_user(*, user: User | AnonymousUser, project_id: int | str | None = None) -> Membership:
    """The user's membership in the requested project, or in their first project."""
    if not user.is_authenticated:
        raise NotFound("Project not found.")
    memberships = Membership.objects.select_related("project").filter(user=user).order_by("created_at", "id")
    if project_id not in (None, ""):
        try:
            memberships = memberships.filter(project_id=int(project_id))
        except (TypeError, ValueError):
            raise NotFound("Project not found.") from None
    membership = memberships.first()
    if membership is None:
        raise NotFound("Project not found.")
    return membership


def members_for_project(*, project: Project) -> QuerySet[Membership]:
    return Membership.objects.filter(project=project).select_related("user").order_by("created_at", "id")
