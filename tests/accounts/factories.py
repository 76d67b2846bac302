import secrets

import factory
from django.utils import timezone

from accounts.models import Invitation, Project, User
from accounts.selectors import write_key_for_project
from accounts.services import INVITATION_LIFETIME, key_hash, project_create


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery staple")

    @classmethod
    def _after_postgeneration(cls, instance, create, results=None):
        if create:
            instance.save()


def project_with_owner(*, name: str = "Acme") -> tuple[Project, User, str]:
    """A project created the way registration creates one: owner, write key, default rules."""
    owner = UserFactory()
    project = project_create(owner=owner, name=name)
    return project, owner, write_key_for_project(project=project)


def invitation_with_token(
    *, project: Project, email: str, invited_by: User, role: str = "member"
) -> tuple[Invitation, str]:
    """An open invitation as `invitation_create` stores it, with the token its email would carry."""
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        project=project,
        email=email.lower(),
        role=role,
        invited_by=invited_by,
        token_hash=key_hash(token),
        expires_at=timezone.now() + INVITATION_LIFETIME,
    )
    return invitation, token
