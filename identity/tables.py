"""Dashboard tables (django-tables2): sorting and pagination come with them."""

import django_tables2 as tables

from .dashboard import DATETIME_FORMAT, DeleteColumn
from .models import KeyPair, Project, RoleAssignment, User

ATTRS = {"class": "table table-sm table-hover align-middle"}


class KeyPairTable(tables.Table):
    fingerprint = tables.Column(attrs={"td": {"class": "font-monospace small"}})
    created = tables.DateTimeColumn(format=DATETIME_FORMAT)
    actions = DeleteColumn("identity:keypair-delete", "key pair")

    class Meta:
        model = KeyPair
        fields = ("name", "fingerprint", "created")
        attrs = ATTRS
        empty_text = "No key pairs yet: create one, or import your own public key, with the form."
        row_attrs = {"data-name": lambda record: record.name}


class ProjectTable(tables.Table):
    created = tables.DateTimeColumn(format=DATETIME_FORMAT)
    members = tables.Column(verbose_name="Role assignments", orderable=True)
    actions = DeleteColumn("identity:admin-project-delete", "project")

    class Meta:
        model = Project
        fields = ("name", "description", "enabled", "members", "created")
        attrs = ATTRS


class UserTable(tables.Table):
    date_joined = tables.DateTimeColumn(format=DATETIME_FORMAT, verbose_name="Joined")
    is_superuser = tables.BooleanColumn(verbose_name="Cloud admin")
    actions = DeleteColumn("identity:admin-user-delete", "user", name_attr="username")

    class Meta:
        model = User
        fields = ("username", "email", "is_active", "is_superuser", "date_joined")
        attrs = ATTRS


class RoleAssignmentTable(tables.Table):
    user = tables.Column(accessor="user__username", verbose_name="User")
    project = tables.Column(accessor="project__name", verbose_name="Project")
    role = tables.Column(accessor="role__name", verbose_name="Role")
    created = tables.DateTimeColumn(format=DATETIME_FORMAT)
    actions = tables.TemplateColumn(
        template_name="identity/_assignment_actions.html", orderable=False, verbose_name=""
    )

    class Meta:
        model = RoleAssignment
        fields = ("user", "project", "role", "created")
        attrs = ATTRS
