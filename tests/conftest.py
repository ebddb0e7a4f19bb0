"""Shared fixtures: a cloud with an admin, a project with a member and a reader, and another project."""

import time
from dataclasses import dataclass

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from identity import services
from identity.context import build_context
from identity.models import Project, User
from tests import enrollment
from tests.factories import PASSWORD, ProjectFactory, UserFactory, grant


def _flush_retrying_on_lock_conflicts() -> None:
    """Transactional tests flush every table while a module's live agents keep heartbeating: on
    PostgreSQL the flush's TRUNCATE and a heartbeat's UPDATE can deadlock (the server aborts one of
    them), on SQLite the flush can meet "database is locked". The agent's side retries its next
    heartbeat; the flush is retried here, a few times, after a short pause."""
    from django.db import OperationalError
    from django.db.backends.base.operations import BaseDatabaseOperations

    original = BaseDatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        for attempt in range(5):
            try:
                return original(self, sql_list)
            except OperationalError as exc:
                conflict = any(s in str(exc) for s in ("deadlock detected", "database is locked"))
                if attempt == 4 or not conflict:
                    raise
                time.sleep(0.2 * (attempt + 1))
        return None

    BaseDatabaseOperations.execute_sql_flush = execute_sql_flush


_flush_retrying_on_lock_conflicts()


@pytest.fixture(autouse=True, scope="session")
def _enrollment_blocker(django_db_blocker):
    enrollment.BLOCKER = django_db_blocker


@pytest.fixture(autouse=True)
def _enrolled_hosts(_enrollment_blocker):
    """Hosts whose agents a harness is running stay enrolled across transactional flushes."""
    enrollment.reenroll()


@dataclass
class Cloud:
    admin_project: Project
    admin: User
    project: Project
    member: User
    reader: User
    other_project: Project
    other_member: User

    def ctx(self, user: User, project: Project | None = None):
        """The service-layer Context of ``user`` in ``project`` (their home project by default)."""
        if project is None:
            project = {self.admin.pk: self.admin_project, self.other_member.pk: self.other_project}.get(
                user.pk, self.project
            )
        return build_context(user, project)


@pytest.fixture
def cloud(db) -> Cloud:
    # Transactional tests flush every table, including the roles the data migration seeded.
    services.seed_roles()
    admin_project = ProjectFactory(name=settings.ZENITH_ADMIN_PROJECT)
    admin = UserFactory(username="cloudadmin")
    grant(admin, admin_project, "admin")
    project = ProjectFactory(name="alpha")
    member = UserFactory(username="alice")
    reader = UserFactory(username="rita")
    grant(member, project, "member")
    grant(reader, project, "reader")
    other_project = ProjectFactory(name="beta")
    other_member = UserFactory(username="bob")
    grant(other_member, other_project, "member")
    return Cloud(admin_project, admin, project, member, reader, other_project, other_member)


def token_client(user: User, project: Project) -> APIClient:
    """An API client authenticated with a real token issued through POST /api/v1/auth/tokens' service."""
    issued = services.issue_token(username=user.username, password=PASSWORD, project=project.name)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.token}")
    return client


@pytest.fixture
def clients(cloud):
    """API clients per role: admin, member, reader, other (another project's member), anonymous."""
    return {
        "admin": token_client(cloud.admin, cloud.admin_project),
        "member": token_client(cloud.member, cloud.project),
        "reader": token_client(cloud.reader, cloud.project),
        "other": token_client(cloud.other_member, cloud.other_project),
        "anonymous": APIClient(),
    }
