import factory

from accounts.models import Project, User
from accounts.selectors import write_key_for_project
from accounts.services import project_create


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
