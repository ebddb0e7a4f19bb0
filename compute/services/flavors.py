"""Flavors: create, update (description, visibility, extra specs, disabled), delete, per-project
access to private flavors, and the seeded m1.* set."""

from __future__ import annotations

import re
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models.deletion import ProtectedError

from identity import audit, policy
from identity.context import Context
from identity.errors import Conflict, InvalidInput, NotFound
from identity.models import Project
from identity.names import clean_name
from identity.validators import clean_bool as _clean_bool
from identity.validators import clean_description, clean_string_map
from identity.validators import clean_int as _clean_int

from ..models import Flavor, FlavorAccess

FLAVOR_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.:@-]{0,63}$")
MAX_VCPUS = 1024
MIN_RAM_MB = 64
MAX_EXTRA_SPECS = 128
MAX_EXTRA_SPEC_LENGTH = 255
MAX_DESCRIPTION = 1024

# The fields a flavor is created with and that never change afterwards (as in Nova).
SIZE_FIELDS = ("name", "vcpus", "ram_mb", "disk_gb", "ephemeral_gb", "swap_mb")

# OpenStack's classic defaults: (name, vcpus, ram_mb, disk_gb).
SEEDED_FLAVORS = (
    ("m1.tiny", 1, 512, 1),
    ("m1.small", 1, 2048, 20),
    ("m1.medium", 2, 4096, 40),
    ("m1.large", 4, 8192, 80),
    ("m1.xlarge", 8, 16384, 160),
)


def _clean_flavor_name(value: Any) -> str:
    name = value.strip() if isinstance(value, str) else ""
    if not FLAVOR_NAME_RE.match(name):
        raise InvalidInput(
            "Flavor name must be 1-64 characters: letters, digits, space, '_', '.', ':', '@', '-', "
            "starting with a letter or digit."
        )
    return clean_name(name, "Flavor", 64)  # the rules every name keeps (this alphabet keeps them already)


def _clean_extra_specs(value: Any) -> dict[str, str]:
    return clean_string_map(
        value,
        what="Extra specs",
        item="Extra spec",
        too_many="A flavor has at most {max_items} extra specs",
        max_items=MAX_EXTRA_SPECS,
        max_key=MAX_EXTRA_SPEC_LENGTH,
        max_value=MAX_EXTRA_SPEC_LENGTH,
    )


def _clean_description(value: Any) -> str:
    return clean_description(value, MAX_DESCRIPTION)


# --- flavors ----------------------------------------------------------------------------------


@transaction.atomic
def create_flavor(
    ctx: Context,
    *,
    name: str,
    vcpus: int,
    ram_mb: int,
    disk_gb: int,
    ephemeral_gb: int = 0,
    swap_mb: int = 0,
    is_public: bool = True,
    extra_specs: dict[str, str] | None = None,
    description: str = "",
    disabled: bool = False,
) -> Flavor:
    """Define a hardware template; its name and sizes are fixed from now on."""
    policy.enforce(ctx, "compute:flavor:create")
    errors: list[str] = []

    def clean(check, *args):
        # Every bad value is named in one refusal, not only the first one found.
        try:
            return check(*args)
        except InvalidInput as exc:
            errors.append(exc.message)
            return None

    fields = {
        "name": clean(_clean_flavor_name, name),
        "vcpus": clean(_clean_int, vcpus, "vCPUs", 1, MAX_VCPUS),
        "ram_mb": clean(_clean_int, ram_mb, "RAM (MB)", MIN_RAM_MB),
        "disk_gb": clean(_clean_int, disk_gb, "Root disk (GB)", 0),
        "ephemeral_gb": clean(_clean_int, ephemeral_gb, "Ephemeral disk (GB)", 0),
        "swap_mb": clean(_clean_int, swap_mb, "Swap (MB)", 0),
        "is_public": clean(_clean_bool, is_public, "Public"),
        "extra_specs": clean(_clean_extra_specs, extra_specs),
        "description": clean(_clean_description, description),
        "disabled": clean(_clean_bool, disabled, "Disabled"),
    }
    if errors:
        raise InvalidInput(" ".join(errors), details={"errors": errors})
    name = fields["name"]
    flavor = Flavor(**fields)
    if Flavor.objects.filter(name__iexact=name).exists():
        raise Conflict(f"A flavor named {name!r} already exists.")
    try:
        with transaction.atomic():
            flavor.save(force_insert=True)
    except IntegrityError:
        raise Conflict(f"A flavor named {name!r} already exists.") from None
    audit.record(ctx, "flavor", flavor.pk, "create", project=None, message=f"created {name}")
    return flavor


@transaction.atomic
def update_flavor(
    ctx: Context,
    flavor: Flavor,
    *,
    description: str | None = None,
    is_public: bool | None = None,
    extra_specs: dict[str, str] | None = None,
    disabled: bool | None = None,
    **fixed: Any,
) -> Flavor:
    """Change a flavor's description, visibility, extra specs or disabled flag.

    ``fixed`` may repeat the name and sizes (a client sending the whole flavor back), but a changed
    value is refused: instances were sized by them, so a different size is a new flavor.
    """
    policy.enforce(ctx, "compute:flavor:update")
    flavor = Flavor.objects.select_for_update().get(pk=flavor.pk)
    unknown = set(fixed) - set(SIZE_FIELDS)
    if unknown:
        raise TypeError(f"update_flavor() got unexpected fields {sorted(unknown)}")
    changed = sorted(field for field, value in fixed.items() if value != getattr(flavor, field))
    if changed:
        raise InvalidInput(
            f"A flavor's name and sizes cannot change ({', '.join(changed)}); create a new flavor instead.",
            code="immutable",
        )
    if description is not None:
        flavor.description = _clean_description(description)
    if extra_specs is not None:
        flavor.extra_specs = _clean_extra_specs(extra_specs)
    if disabled is not None:
        flavor.disabled = _clean_bool(disabled, "Disabled")
    if is_public is not None:
        flavor.is_public = _clean_bool(is_public, "Public")
        if flavor.is_public:
            # Access rows mean nothing for a public flavor and could no longer be removed.
            FlavorAccess.objects.filter(flavor=flavor).delete()
    flavor.save()
    message = audit.changed(
        description=description, is_public=is_public, extra_specs=extra_specs, disabled=disabled
    )
    audit.record(ctx, "flavor", flavor.pk, "update", project=None, message=message)
    return flavor


@transaction.atomic
def delete_flavor(ctx: Context, flavor: Flavor) -> None:
    """Delete a flavor; its project access goes with it."""
    policy.enforce(ctx, "compute:flavor:delete")
    try:
        pk = flavor.pk
        flavor.delete()
    except ProtectedError:
        raise Conflict(f"Flavor {flavor.name} is in use.") from None
    audit.record(ctx, "flavor", pk, "delete", project=None, message=f"deleted {flavor.name}")


# --- access to private flavors ----------------------------------------------------------------


def _require_private(flavor: Flavor) -> None:
    if flavor.is_public:
        raise Conflict(f"Flavor {flavor.name} is public: every project may already use it.")


@transaction.atomic
def add_flavor_access(ctx: Context, flavor: Flavor, project: Project) -> FlavorAccess:
    """Let ``project`` use the private flavor ``flavor``."""
    policy.enforce(ctx, "compute:flavor:access")
    flavor = Flavor.objects.select_for_update().get(pk=flavor.pk)
    _require_private(flavor)
    if FlavorAccess.objects.filter(flavor=flavor, project=project).exists():
        raise Conflict(f"Project {project.name} may already use flavor {flavor.name}.")
    access = FlavorAccess.objects.create(flavor=flavor, project=project)
    audit.record(ctx, "flavor", flavor.pk, "access_add", project=None, message=f"project {project.name}")
    return access


@transaction.atomic
def remove_flavor_access(ctx: Context, flavor: Flavor, project: Project) -> None:
    """Stop ``project`` from launching new instances of the private flavor ``flavor``."""
    policy.enforce(ctx, "compute:flavor:access")
    flavor = Flavor.objects.select_for_update().get(pk=flavor.pk)
    _require_private(flavor)
    deleted, _ = FlavorAccess.objects.filter(flavor=flavor, project=project).delete()
    if not deleted:
        raise NotFound(f"Project {project.name} has no access to flavor {flavor.name}.")
    audit.record(ctx, "flavor", flavor.pk, "access_remove", project=None, message=f"project {project.name}")


# --- seeding ----------------------------------------------------------------------------------


@transaction.atomic
def seed_flavors() -> list[Flavor]:
    """Make sure OpenStack's m1.tiny ... m1.xlarge exist (idempotent; existing flavors are kept).

    Returns the flavors it created.
    """
    created = []
    for name, vcpus, ram_mb, disk_gb in SEEDED_FLAVORS:
        flavor, new = Flavor.objects.get_or_create(
            name=name, defaults={"vcpus": vcpus, "ram_mb": ram_mb, "disk_gb": disk_gb}
        )
        if new:
            created.append(flavor)
    return created
