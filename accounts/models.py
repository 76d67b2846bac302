from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.models import TimeStampedModel


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra):
        if not email:
            raise ValueError("Users need an email address.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(unique=True)
    name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = []

    def __str__(self) -> str:
        return self.email


class Project(TimeStampedModel):
    name = models.CharField(max_length=200)
    domain = models.CharField(max_length=253, blank=True)
    is_active = models.BooleanField(default=True)
    # Ingest events per second for this project's write key; null: LEADPULSE_RATE_INGEST_KEY.
    ingest_rate_per_second = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(ingest_rate_per_second__isnull=True) | Q(ingest_rate_per_second__gte=1),
                name="project_ingest_rate_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(TimeStampedModel):
    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        MEMBER = "member"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "project"], name="membership_unique_user_project")]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"

    @property
    def is_admin(self) -> bool:
        """Owners and admins change rules, keys, automations and members; members read."""
        return self.role in (self.Role.OWNER, self.Role.ADMIN)


class ApiKey(TimeStampedModel):
    """A project credential. Write keys are public (they sit in web pages) and ingest-only."""

    class Kind(models.TextChoices):
        WRITE = "write"
        SECRET = "secret"  # noqa: S105 (a key kind, not a password)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_keys")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    # Only write keys keep their plaintext: the dashboard shows them. Secret keys are shown once.
    key = models.CharField(max_length=64, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(kind="write", revoked_at__isnull=True),
                name="apikey_one_active_write_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.kind})"


# What an invitation may grant: ownership is never handed out by invitation.
INVITATION_ROLES = [(Membership.Role.ADMIN.value, "Admin"), (Membership.Role.MEMBER.value, "Member")]


class Invitation(TimeStampedModel):
    """An offer to join a project, accepted by whoever holds its emailed link and signs in as `email`.

    Nothing changes for the invitee until they accept: no account, no membership. The link's
    token is stored hashed; re-inviting issues a new one and the old link stops working.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()  # lower case
    role = models.CharField(max_length=16, choices=INVITATION_ROLES, default=Membership.Role.MEMBER)
    invited_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="invitations_sent")
    token_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "email"],
                condition=Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="invitation_one_open_per_email",
            ),
            models.CheckConstraint(condition=~Q(role="owner"), name="invitation_not_owner"),
        ]

    def __str__(self) -> str:
        return f"{self.email} to {self.project} ({self.role})"

    @property
    def status(self) -> str:
        """accepted, revoked, expired or pending."""
        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "pending"
