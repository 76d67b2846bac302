"""Reads for users, projects and keys."""

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.db.models import QuerySet

from core.errors import Forbidden, NotAuthenticated, NotFound

from .models import ApiKey, Invitation, Membership, Project, User
from .services import SECRET_KEY_PREFIX, invitation_check_open, key_hash, write_key_cache_key

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriteKeyProject:
    """What ingest needs to know about the project behind a write key (cacheable)."""

    id: int
    is_active: bool
    ingest_rate_per_second: int | None = None  # the project's own ingest limit, if any


class Admission(Protocol):
    """What `IngestAdmission.admit` found (core.cache.Admission)."""

    @property
    def matched(self) -> bool: ...  # the entry held the bytes known for the key: its events are spent

    @property
    def entry(self) -> bytes | None: ...  # otherwise the entry's bytes (None: there is none)


class WriteKeyAdmission(Protocol):
    """An ingest request's limits, checked with the key's cache entry (core.ratelimits.IngestAdmission)."""

    def admit(self, *, entry_key: str, known: tuple[bytes, WriteKeyProject] | None) -> Admission | None: ...

    def entry_value(self, raw: bytes) -> Any: ...

    def spend(self, project: WriteKeyProject) -> None: ...


# Write keys this process has seen valid: digest -> (the bytes of their cache entry, their project). Used
# only while the shared cache holds exactly those bytes (IngestAdmission compares them in Redis), so a
# key revoked or a project deactivated (both delete the entry at commit) is refused by every process
# on its next request; a copy never outlives its entry.
_known_write_keys: dict[str, tuple[bytes, WriteKeyProject]] = {}
KNOWN_WRITE_KEYS_MAX = 1000
_MISSING = object()


class KeyLookupGuard(Protocol):
    """Limits a client's failed key lookups (core.ratelimits.FailedKeyLookups)."""

    def check(self) -> None: ...  # before looking up a key not known to be good: raises past the allowance

    def failed(self) -> None: ...  # after a key turned out to be none: counts it, raises past the allowance


def project_for_write_key(
    *,
    raw_key: str | None,
    field: str = "apiKey",
    guard: KeyLookupGuard | None = None,
    admission: WriteKeyAdmission | None = None,
) -> WriteKeyProject:
    """Resolve a write key to its project, through the cache; 401 unknown, 403 inactive.

    With a `guard`, a key not cached as valid is looked up only while the client has failed
    lookups left (429 past them); cached valid keys always pass. With an `admission`, the request's
    rate limits are checked with the cache entry's read (one round trip for a key this process knows)
    and the project's are spent before it is returned.
    """
    if not raw_key or not isinstance(raw_key, str) or len(raw_key) > 128:
        raise NotAuthenticated("A valid write key is required.", field=field, code="invalid_api_key")
    digest = key_hash(raw_key)
    cache_key = write_key_cache_key(digest)
    cached: Any = _MISSING
    if admission is not None:
        known = _known_write_keys.get(digest)
        admitted = admission.admit(entry_key=cache_key, known=known)
        if admitted is not None and admitted.matched:
            assert known is not None
            return known[1]
        if admitted is not None:
            cached = None if admitted.entry is None else admission.entry_value(admitted.entry)
            if cached and cached[0] and cached[1] and admitted.entry is not None:
                if len(_known_write_keys) >= KNOWN_WRITE_KEYS_MAX:
                    _known_write_keys.clear()
                _known_write_keys[digest] = (admitted.entry, _write_key_project(cached))
    if cached is _MISSING:
        try:
            cached = cache.get(cache_key)
        except Exception:  # Redis down: the database still answers, ingest keeps accepting events
            logger.warning("write-key cache unavailable", exc_info=True)
            cached, cache_key = None, ""
    if guard is not None and not (cached and cached[0]):
        guard.check()
    if cached is None:
        row = (
            ApiKey.objects.filter(key_hash=digest, kind=ApiKey.Kind.WRITE, revoked_at__isnull=True)
            .values_list("project_id", "project__is_active", "project__ingest_rate_per_second")
            .first()
        )
        # Unknown keys are cached too (briefly), so one bad key repeated costs one lookup; with a guard,
        # a client IP can add only its allowance of failed lookups of them per window.
        cached = row or (0, False, None)
        if cache_key:
            cache.set(cache_key, cached, settings.LEADPULSE_WRITE_KEY_CACHE_SECONDS if row else 10)
    project = _write_key_project(cached)
    if not project.id:
        if guard is not None:
            guard.failed()
        raise NotAuthenticated("Invalid write key.", field=field, code="invalid_api_key")
    if not project.is_active:
        raise Forbidden("This project is inactive.", code="project_inactive")
    if admission is not None:
        admission.spend(project)
    return project


def _write_key_project(cached: tuple) -> WriteKeyProject:
    project_id, is_active, rate = (*cached, None)[:3]  # entries cached before the rate existed have two
    return WriteKeyProject(id=project_id, is_active=is_active, ingest_rate_per_second=rate)


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


SECRET_KEY_SEEN_SECONDS = 86400


def secret_key_for_raw(*, raw_key: str, guard: KeyLookupGuard | None = None) -> ApiKey | None:
    """The live secret key with this plaintext, with its project, or None.

    The database decides (a revoked key fails at once). With a `guard`, a key not seen valid in
    the last day is looked up only while the client has failed lookups left (429 past them).
    """
    if not raw_key.startswith(SECRET_KEY_PREFIX) or len(raw_key) > 128:
        return None
    digest = key_hash(raw_key)
    seen_key = f"lp:secret-key-seen:{digest}"  # a marker of a digest that was valid, never the key itself
    try:
        seen = cache.get(seen_key) is not None
    except Exception:  # Redis down: look it up
        logger.warning("secret-key cache unavailable", exc_info=True)
        seen, seen_key = True, ""
    if guard is not None and not seen:
        guard.check()
    api_key = (
        ApiKey.objects.select_related("project")
        .filter(key_hash=digest, kind=ApiKey.Kind.SECRET, revoked_at__isnull=True)
        .first()
    )
    if api_key is None:
        if guard is not None:
            guard.failed()
        return None
    if not seen and seen_key:
        cache.set(seen_key, 1, SECRET_KEY_SEEN_SECONDS)
    return api_key


def secret_keys_for_project(*, project: Project) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(project=project, kind=ApiKey.Kind.SECRET).order_by("-created_at", "-id")


def secret_key_for_project(*, project: Project, key_id: int) -> ApiKey:
    """One of the project's secret keys; 404 for any other id."""
    api_key = secret_keys_for_project(project=project).filter(pk=key_id).first()
    if api_key is None:
        raise NotFound("Secret key not found.")
    return api_key


def memberships_for_user(*, user: User) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("project").order_by("created_at", "id")


def membership_for_project_key(*, project: Project, project_id: int | str | None = None) -> Membership:
    """The admin rights a secret key holds in its own project; 404 when another project is named.

    The membership is unsaved: a key is not a user, but views check rights through a role.
    """
    if project_id not in (None, ""):
        try:
            requested = int(project_id)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise NotFound("Project not found.") from None
        if requested != project.pk:
            raise NotFound("Project not found.")
    return Membership(project=project, role=Membership.Role.ADMIN)


def invitations_for_project(*, project: Project) -> QuerySet[Invitation]:
    """The project's invitations not yet accepted or revoked (expired ones included), oldest first."""
    return (
        Invitation.objects.filter(project=project, accepted_at__isnull=True, revoked_at__isnull=True)
        .select_related("invited_by")
        .order_by("created_at", "id")
    )


def invitation_for_project(*, project: Project, invitation_id: int) -> Invitation:
    """One of the project's invitations (any state); 404 for any other id."""
    invitation = Invitation.objects.filter(project=project, pk=invitation_id).first()
    if invitation is None:
        raise NotFound("Invitation not found.")
    return invitation


def invitation_for_token(*, token: str) -> Invitation:
    """The open invitation behind an emailed link; 404 unknown, 410 accepted, revoked or expired."""
    invitation = (
        Invitation.objects.select_related("project", "invited_by").filter(token_hash=key_hash(token)).first()
        if token and len(token) <= 128
        else None
    )
    if invitation is None:
        raise NotFound("Invitation not found.")
    return invitation_check_open(invitation)


def project_ids() -> list[int]:
    """Every project's id, in order (maintenance jobs that walk all projects)."""
    return list(Project.objects.order_by("id").values_list("id", flat=True))
