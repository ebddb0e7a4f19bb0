"""factory_boy factories shared by every test folder."""

import factory

from identity.models import KeyPair, Project, Role, RoleAssignment, User

PASSWORD = "correct-horse-battery"


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"project-{n}")
    description = "test project"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.test")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class KeyPairFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = KeyPair

    user = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"key-{n}")
    public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN2Lan6QisVsk+OLMPsfbFAmGEtixwf3pyLPJ6lSTNYE test"
    fingerprint = "SHA256:test"


def grant(user: User, project: Project, role_name: str) -> RoleAssignment:
    """Assign a role through the service (so guardian grants are made as in production)."""
    from identity import services
    from identity.context import system_context

    return services.assign_role(
        system_context(), user=user, project=project, role=Role.objects.get(name=role_name)
    )
