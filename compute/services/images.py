"""Images (what Glance does): create, upload (streamed), download, update, soft delete, sharing with
named projects, the checks and boot spec an instance launch needs, and the seeded demo image.

Bytes live in Django's default storage under ``images/<id>``; a compute host fetches them over HTTP
from the portal with a signed, expiring URL (``image_fetch_url``) and keeps them in its cache.
"""

from __future__ import annotations

import hashlib
import logging
import re
import struct
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.urls import reverse

from identity import audit, policy
from identity.context import Context
from identity.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PolicyDenied,
    ServiceUnavailable,
    TooLarge,
    ZenithError,
)
from identity.models import Project
from identity.names import clean_name
from identity.validators import clean_bool as _clean_bool
from identity.validators import clean_int as _clean_int
from identity.validators import clean_string_map, clean_tags

from ..models import Image, ImageMember

__all__ = [
    "DISK_FORMATS",
    "CONTAINER_FORMATS",
    "DEMO_IMAGE_NAME",
    "create_image",
    "upload_image_data",
    "open_image_data",
    "update_image",
    "delete_image",
    "set_image_tags",
    "add_image_tag",
    "remove_image_tag",
    "create_tagged_image",
    "list_image_members",
    "add_image_member",
    "remove_image_member",
    "get_image_member",
    "set_image_member_status",
    "seed_images",
    "check_image_bootable",
    "image_boot_spec",
    "image_fetch_url",
    "read_image_token",
    "open_signed_image_data",
    "demo_qcow2",
]

log = logging.getLogger(__name__)

DISK_FORMATS = tuple(value for value, _ in Image.DISK_FORMATS)
CONTAINER_FORMATS = tuple(value for value, _ in Image.CONTAINER_FORMATS)
VISIBILITIES = (Image.PUBLIC, Image.PRIVATE, Image.SHARED)
KERNEL_FORMATS = ("aki", "ari")
MAX_NAME = 255
MAX_PROPERTIES = 128
MAX_PROPERTY_KEY = 255
MAX_PROPERTY_VALUE = 4096
UPDATABLE = ("name", "visibility", "min_disk", "min_ram", "protected", "properties")
# Properties that name other images, and the disk format the named image must have.
BOOT_PROPERTIES = {"kernel_id": "aki", "ramdisk_id": "ari"}
TOKEN_SALT = "zenith.compute.image-data"
TOKEN_CLOCK_SKEW = 60  # seconds a fetch URL's signing time may lie ahead of this clock (hosts drift)
DEMO_IMAGE_NAME = "zenith-demo"
_PROPERTY_KEY_RE = re.compile(r"^[A-Za-z0-9_.:-]+$")


# --- validation ---------------------------------------------------------------------------------


def _clean_name(value: Any) -> str:
    return clean_name(value, "Image", MAX_NAME)


def _clean_choice(value: Any, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise InvalidInput(f"{what} must be one of {', '.join(choices)}.")
    return value


def _clean_formats(disk_format: Any, container_format: Any) -> tuple[str, str]:
    disk_format = _clean_choice(disk_format, DISK_FORMATS, "Disk format")
    container_format = _clean_choice(container_format, CONTAINER_FORMATS, "Container format")
    if disk_format in KERNEL_FORMATS and container_format != disk_format:
        raise InvalidInput(f"A {disk_format} image must have container format {disk_format}.")
    if container_format in KERNEL_FORMATS and disk_format != container_format:
        raise InvalidInput(f"Container format {container_format} is for {container_format} disk images only.")
    return disk_format, container_format


def _clean_properties(ctx: Context, value: Any) -> dict[str, str]:
    properties = clean_string_map(
        value,
        what="Properties",
        item="Property",
        too_many="An image has at most {max_items} properties",
        max_items=MAX_PROPERTIES,
        max_key=MAX_PROPERTY_KEY,
        max_value=MAX_PROPERTY_VALUE,
        key_re=_PROPERTY_KEY_RE,
        keys_are="names must be 1-{max_key} letters, digits, '_', '.', ':' or '-'",
    )
    for key, wanted in BOOT_PROPERTIES.items():
        if properties.get(key):
            properties[key] = _clean_boot_image(ctx, key, properties[key], wanted)
    return properties


def _clean_boot_image(ctx: Context, key: str, value: str, wanted: str) -> str:
    """``kernel_id``/``ramdisk_id`` must name an active aki/ari image the caller can see."""
    try:
        image = Image.objects.get_visible(ctx, pk=value)
    except NotFound:
        raise InvalidInput(f"{key} {value!r} names no image you can see.") from None
    if image.disk_format != wanted:
        raise InvalidInput(f"{key} must name an {wanted} image; {image.name} is {image.disk_format}.")
    if image.status != Image.ACTIVE:
        raise InvalidInput(f"{key} names image {image.name}, which is {image.status}, not active.")
    return str(image.pk)


def _require_owner(ctx: Context, image: Image) -> None:
    """Only the owning project's members (or cloud admins) change an image others can merely see."""
    if ctx.is_admin:
        return
    if image.project_id is None or image.project_id != ctx.project_id:
        raise PolicyDenied(f"Image {image.name} belongs to another project: you can use it, not change it.")


def _locked(image: Image) -> Image:
    try:
        return Image.objects.select_for_update().exclude(status=Image.DELETED).get(pk=image.pk)
    except Image.DoesNotExist:
        raise NotFound("No such image.") from None


# --- create -------------------------------------------------------------------------------------


def create_image(
    ctx: Context,
    *,
    name: str,
    disk_format: str,
    container_format: str = "bare",
    visibility: str = Image.PRIVATE,
    min_disk: int = 0,
    min_ram: int = 0,
    protected: bool = False,
    properties: dict[str, str] | None = None,
) -> Image:
    """Register an image in the caller's project, ``queued`` until its bytes are uploaded.

    Public images are offered to every project, so only cloud admins publish them.
    """
    policy.enforce(ctx, "compute:image:create")
    visibility = _clean_choice(visibility, VISIBILITIES, "Visibility")
    if visibility == Image.PUBLIC:
        policy.enforce(ctx, "compute:image:publicize")
    disk_format, container_format = _clean_formats(disk_format, container_format)
    image = Image(
        name=_clean_name(name),
        project=ctx.project,
        owner=ctx.user,
        status=Image.QUEUED,
        visibility=visibility,
        disk_format=disk_format,
        container_format=container_format,
        min_disk=_clean_int(min_disk, "Minimum disk (GB)"),
        min_ram=_clean_int(min_ram, "Minimum RAM (MB)"),
        protected=_clean_bool(protected, "Protected"),
        properties=_clean_properties(ctx, properties),
    )
    image.save(force_insert=True)
    audit.record(ctx, "image", image.pk, "create", project=image.project_id, message=f"created {image.name}")
    return image


# --- upload -------------------------------------------------------------------------------------


class _SourceError(Exception):
    """The uploader's side failed (client went away, unreadable body), not the storage."""


class _HashingStream(File):
    """A read-once File over an iterable of byte chunks: whatever the storage reads (``chunks()`` or
    ``read()``) is counted and hashed on the way through, so the upload is never held in memory."""

    def __init__(self, chunks: Iterable[bytes], name: str, limit: int | None, max_size: int):
        super().__init__(None, name=name)
        self._source: Iterator[bytes] = iter(chunks)
        self._buffer = b""
        self._limit = limit
        self._max_size = max_size
        self.sha256 = hashlib.sha256()
        self.count = 0

    def _next_chunk(self) -> bytes:
        while True:
            try:
                chunk = next(self._source)
            except StopIteration:
                return b""
            except Exception as exc:
                raise _SourceError(str(exc) or type(exc).__name__) from exc
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                raise _SourceError("upload chunks must be bytes")
            if chunk:
                chunk = bytes(chunk)
                self.count += len(chunk)
                if self._limit is not None and self.count > self._limit:
                    raise InvalidInput(
                        f"More data arrived than the {self._limit} bytes announced.", code="size_mismatch"
                    )
                if self.count > self._max_size:
                    raise TooLarge(f"Images are limited to {self._max_size} bytes (ZENITH_IMAGE_MAX_SIZE).")
                self.sha256.update(chunk)
                return chunk

    def chunks(self, chunk_size=None):
        if self._buffer:
            data, self._buffer = self._buffer, b""
            yield data
        while chunk := self._next_chunk():
            yield chunk

    def read(self, size=-1):
        if size is None or size < 0:
            return b"".join(self.chunks())
        while len(self._buffer) < size:
            chunk = self._next_chunk()
            if not chunk:
                break
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def seekable(self):
        return False

    def close(self):
        pass

    @property
    def closed(self):
        return False


def _storage_name(image: Image) -> str:
    return f"images/{image.pk}"


def _remove_bytes(name: str) -> None:
    if not name:
        return
    try:
        default_storage.delete(name)
    except Exception:  # a leftover file costs disk, not correctness: log it and carry on
        log.exception("could not remove image data %s from storage", name)


def _kill(image: Image, name: str, reason: str, ctx: Context | None = None) -> None:
    Image.objects.filter(pk=image.pk, status=Image.SAVING).update(status=Image.KILLED)
    image.status = Image.KILLED
    _remove_bytes(name)
    if ctx is not None:  # the failed upload stays in the trail (no transaction rolls it back)
        audit.record(
            ctx, "image", image.pk, "upload", project=image.project_id, result="error", message=reason
        )
    log.warning("upload of image %s failed and it is now killed: %s", image.pk, reason)


def upload_image_data(
    ctx: Context, image: Image, chunks: Iterable[bytes], expected_size: int | None = None
) -> Image:
    """Store an image's bytes, streamed chunk by chunk to storage while its size and sha256 are computed.

    queued -> saving -> active. Data can be uploaded once: any other status answers 409. If the upload
    fails (the client goes away, the size differs from ``expected_size``, the storage refuses), the
    image ends ``killed`` and no partial bytes are kept. Uploads over ``ZENITH_IMAGE_MAX_SIZE`` bytes
    answer 413 (TooLarge): before anything is read when announced, else killed when the bytes pass it.
    """
    policy.enforce(ctx, "compute:image:upload")
    _require_owner(ctx, image)
    max_size = settings.ZENITH_IMAGE_MAX_SIZE
    if expected_size is not None:
        expected_size = _clean_int(expected_size, "Image size")
        if expected_size > max_size:  # refused before a byte is read: the image stays queued
            raise TooLarge(
                f"The upload announces {expected_size} bytes; images are limited to {max_size} bytes "
                "(ZENITH_IMAGE_MAX_SIZE)."
            )
    if not Image.objects.filter(pk=image.pk, status=Image.QUEUED).update(status=Image.SAVING):
        current = Image.objects.filter(pk=image.pk).values_list("status", flat=True).first()
        if current in (None, Image.DELETED):
            raise NotFound("No such image.")
        raise Conflict(
            f"Image {image.name} is {current}: data can be uploaded only once, to a queued image.",
            code="invalid_state",
        )
    image.status = Image.SAVING
    name = _storage_name(image)
    stream = _HashingStream(chunks, name=name, limit=expected_size, max_size=max_size)
    try:
        if default_storage.exists(name):  # left over by a crash mid-upload: never served, safe to drop
            default_storage.delete(name)
        saved = default_storage.save(name, stream)
    except ZenithError as exc:
        _kill(image, name, exc.message, ctx)
        raise type(exc)(f"{exc.message} Image {image.name} is now killed.", code=exc.code) from None
    except _SourceError as exc:
        _kill(image, name, str(exc), ctx)
        raise InvalidInput(
            f"The upload of image {image.name} was interrupted ({exc}); the image is now killed.",
            code="upload_interrupted",
        ) from None
    except Exception as exc:
        _kill(image, name, repr(exc), ctx)
        log.exception("storage failed while saving image %s", image.pk)
        raise ServiceUnavailable(
            f"The image store could not save image {image.name}; the image is now killed.",
            code="storage_error",
        ) from None
    size, checksum = stream.count, stream.sha256.hexdigest()
    problem = None
    if size == 0:
        problem = "The upload was empty."
    elif expected_size is not None and size != expected_size:
        problem = f"The upload ended after {size} of the {expected_size} bytes announced."
    if problem:
        _kill(image, saved, problem, ctx)
        raise InvalidInput(f"{problem} Image {image.name} is now killed.", code="size_mismatch")
    with transaction.atomic():
        current = Image.objects.select_for_update().get(pk=image.pk)
        if current.status == Image.SAVING:
            current.file.name = saved
            current.size = size
            current.checksum = checksum
            current.status = Image.ACTIVE
            current.save(update_fields=["file", "size", "checksum", "status", "updated"])
    if current.status != Image.ACTIVE:  # deleted while the bytes were arriving
        _remove_bytes(saved)
        raise Conflict(f"Image {image.name} was {current.status} during the upload.", code="invalid_state")
    audit.record(ctx, "image", image.pk, "upload", project=image.project_id, message=f"{size} bytes")
    return current


# --- download -----------------------------------------------------------------------------------


def _open_bytes(image: Image):
    if image.status != Image.ACTIVE:
        raise Conflict(
            f"Image {image.name} is {image.status}: it has no data to download.", code="invalid_state"
        )
    try:
        return default_storage.open(image.file.name, "rb")
    except (OSError, ValueError):
        log.exception("image %s is active but its data %r cannot be opened", image.pk, image.file.name)
        raise ServiceUnavailable(
            f"The data of image {image.name} cannot be read from the image store.", code="storage_error"
        ) from None


def open_image_data(ctx: Context, image: Image):
    """An open, read-only binary file of an active image's bytes (the caller streams and closes it)."""
    policy.enforce(ctx, "compute:image:download")
    return _open_bytes(image)


# --- update and delete --------------------------------------------------------------------------


@transaction.atomic
def update_image(ctx: Context, image: Image, **fields: Any) -> Image:
    """Change an image's name, visibility, minimum disk and RAM, protection or properties (replaced
    as a whole). Its formats and bytes never change once uploaded; make a new image instead."""
    policy.enforce(ctx, "compute:image:update")
    unknown = set(fields) - set(UPDATABLE)
    if unknown:
        raise InvalidInput(f"These image fields cannot be changed: {', '.join(sorted(unknown))}.")
    _require_owner(ctx, image)
    image = _locked(image)
    changed = []
    if fields.get("name") is not None:
        image.name = _clean_name(fields["name"])
        changed.append("name")
    if fields.get("visibility") is not None:
        visibility = _clean_choice(fields["visibility"], VISIBILITIES, "Visibility")
        if visibility != image.visibility and Image.PUBLIC in (visibility, image.visibility):
            policy.enforce(ctx, "compute:image:publicize")
        if visibility != Image.PUBLIC and image.project_id is None:
            raise InvalidInput(f"Image {image.name} belongs to no project: it can only be public.")
        image.visibility = visibility
        changed.append("visibility")
    for field, what in (("min_disk", "Minimum disk (GB)"), ("min_ram", "Minimum RAM (MB)")):
        if fields.get(field) is not None:
            setattr(image, field, _clean_int(fields[field], what))
            changed.append(field)
    if fields.get("protected") is not None:
        image.protected = _clean_bool(fields["protected"], "Protected")
        changed.append("protected")
    if fields.get("properties") is not None:
        properties = _clean_properties(ctx, fields["properties"])
        if str(image.pk) in (properties.get("kernel_id"), properties.get("ramdisk_id")):
            raise InvalidInput("An image cannot be its own kernel or ramdisk.")
        image.properties = properties
        changed.append("properties")
    if changed:
        image.save(update_fields=[*changed, "updated"])
    audit.record(ctx, "image", image.pk, "update", project=image.project_id, message=audit.changed(changed))
    return image


@transaction.atomic
def delete_image(ctx: Context, image: Image) -> None:
    """Delete an image: its bytes leave the store, its row stays (as ``deleted``) for the instances
    launched from it. A protected image must be unprotected first."""
    policy.enforce(ctx, "compute:image:delete")
    _require_owner(ctx, image)
    image = _locked(image)
    if image.protected:
        raise Conflict(f"Image {image.name} is protected: unprotect it before deleting it.", code="protected")
    name = image.file.name
    image.status = Image.DELETED
    image.file.name = ""
    image.save(update_fields=["status", "file", "updated"])
    audit.record(ctx, "image", image.pk, "delete", project=image.project_id, message=f"deleted {image.name}")
    transaction.on_commit(lambda: _remove_bytes(name))


# --- tags ---------------------------------------------------------------------------------------

MAX_TAGS = 128
MAX_TAG = 255


def _clean_tags(value: Any) -> list[str]:
    return clean_tags(value, what="An image", max_items=MAX_TAGS, max_length=MAX_TAG)


@transaction.atomic
def set_image_tags(ctx: Context, image: Image, tags: Any) -> Image:
    """Replace an image's tags (free-form labels for finding it; they change nothing about booting)."""
    policy.enforce(ctx, "compute:image:update")
    tags = _clean_tags(tags)
    _require_owner(ctx, image)
    image = _locked(image)
    if tags != image.tags:
        image.tags = tags
        image.save(update_fields=["tags", "updated"])
    return image


def add_image_tag(ctx: Context, image: Image, tag: Any) -> Image:
    """Add one tag to an image (adding one it has already changes nothing)."""
    return set_image_tags(ctx, image, [*image.tags, tag])


@transaction.atomic
def remove_image_tag(ctx: Context, image: Image, tag: str) -> Image:
    """Remove one tag from an image; NotFound when it does not have it."""
    image = _locked(image)
    if tag not in image.tags:
        raise NotFound(f"Image {image.name} has no tag {tag}.")
    return set_image_tags(ctx, image, [t for t in image.tags if t != tag])


@transaction.atomic
def create_tagged_image(ctx: Context, *, tags: Any, **fields: Any) -> Image:
    """``create_image`` with tags, in one transaction (refused tags create nothing)."""
    image = create_image(ctx, **fields)
    return set_image_tags(ctx, image, tags) if tags else image


# --- sharing with named projects ----------------------------------------------------------------


def _require_shared(image: Image) -> None:
    if image.visibility != Image.SHARED:
        raise Conflict(
            f"Image {image.name} is {image.visibility}: make it shared before sharing it with projects.",
            code="not_shared",
        )


def list_image_members(ctx: Context, image: Image):
    """The projects a shared image is offered to, each with its status (pending, accepted, rejected),
    for its owning project and cloud admins."""
    policy.enforce(ctx, "compute:image:show")
    _require_owner(ctx, image)
    return ImageMember.objects.filter(image=image).select_related("project")


@transaction.atomic
def add_image_member(ctx: Context, image: Image, project: Project) -> ImageMember:
    """Offer the shared image ``image`` to ``project``: the membership is ``pending`` until a member of
    that project accepts it (``set_image_member_status``); until then the image is not in its catalogue."""
    policy.enforce(ctx, "compute:image:member")
    _require_owner(ctx, image)
    image = _locked(image)
    _require_shared(image)
    if project.pk == image.project_id:
        raise InvalidInput(f"Project {project.name} owns image {image.name} already.")
    if ImageMember.objects.filter(image=image, project=project).exists():
        raise Conflict(f"Image {image.name} is already shared with project {project.name}.")
    try:
        with transaction.atomic():
            member = ImageMember.objects.create(image=image, project=project, status=ImageMember.PENDING)
    except IntegrityError:
        raise Conflict(f"Image {image.name} is already shared with project {project.name}.") from None
    audit.record(
        ctx, "image", image.pk, "member_add", project=image.project_id, message=f"project {project.name}"
    )
    return member


@transaction.atomic
def remove_image_member(ctx: Context, image: Image, project: Project) -> None:
    """Stop sharing ``image`` with ``project`` (its running instances keep running)."""
    policy.enforce(ctx, "compute:image:member")
    _require_owner(ctx, image)
    image = _locked(image)
    _require_shared(image)
    deleted, _ = ImageMember.objects.filter(image=image, project=project).delete()
    if not deleted:
        raise NotFound(f"Image {image.name} is not shared with project {project.name}.")
    audit.record(
        ctx, "image", image.pk, "member_remove", project=image.project_id, message=f"project {project.name}"
    )


def _own_membership(ctx: Context, image: Image, project: Project) -> ImageMember:
    """The membership of ``project`` in ``image``, for a member of that project (or a cloud admin);
    NotFound when there is none, so an image not offered to the caller stays unknown to it."""
    if not ctx.is_admin and project.pk != ctx.project_id:
        raise PolicyDenied("Only the member project decides on its own membership.")
    member = ImageMember.objects.filter(image=image, project=project).select_related("project").first()
    if member is None:
        raise NotFound(f"Image {image.name} is not shared with project {project.name}.")
    return member


def get_image_member(ctx: Context, image: Image, project: Project) -> ImageMember:
    """One membership with its status: for the image's owning project, or for the member project."""
    policy.enforce(ctx, "compute:image:show")
    if ctx.is_admin or (image.project_id is not None and image.project_id == ctx.project_id):
        member = ImageMember.objects.filter(image=image, project=project).select_related("project").first()
        if member is None:
            raise NotFound(f"Image {image.name} is not shared with project {project.name}.")
        return member
    return _own_membership(ctx, image, project)


@transaction.atomic
def set_image_member_status(ctx: Context, image: Image, project: Project, status: str) -> ImageMember:
    """The member project's decision on an image offered to it: ``accepted`` puts it in the project's
    catalogue (listed, resolvable by name, bootable), ``rejected`` takes it out (leaving an image is
    rejecting it; the owner cannot push it again while the rejected membership stays), ``pending``
    defers the decision. The owner cannot decide for the member."""
    policy.enforce(ctx, "compute:image:member_status")
    status = _clean_choice(status, tuple(value for value, _ in ImageMember.STATUSES), "Member status")
    member = _own_membership(ctx, image, project)
    member = ImageMember.objects.select_for_update().get(pk=member.pk)
    if member.status != status:
        member.status = status
        member.save(update_fields=["status", "updated"])
        audit.record(
            ctx,
            "image",
            image.pk,
            "member_status",
            project=image.project_id,
            message=f"project {project.name}: {status}",
        )
    member.project = project
    return member


# --- launch support -----------------------------------------------------------------------------


def _boot_images(image: Image) -> dict[str, Image | None]:
    """The images ``kernel_id``/``ramdisk_id`` name ({} entries None when unset); one query."""
    properties = image.properties or {}
    wanted = {key: properties.get(key) for key in BOOT_PROPERTIES if properties.get(key)}
    if not wanted:
        return dict.fromkeys(BOOT_PROPERTIES)
    ids = []
    for key, value in wanted.items():
        try:
            ids.append(uuid.UUID(str(value)))
        except ValueError:
            raise InvalidInput(f"Image {image.name} has a malformed {key} ({value!r}).") from None
    found = {str(row.pk): row for row in Image.objects.filter(pk__in=ids)}
    result: dict[str, Image | None] = dict.fromkeys(BOOT_PROPERTIES)
    for key, value in wanted.items():
        row = found.get(str(uuid.UUID(str(value))))
        if row is None or row.status != Image.ACTIVE:
            state = "does not exist" if row is None else f"is {row.status}"
            raise InvalidInput(f"The {key} of image {image.name} ({value}) {state}: it cannot boot.")
        if row.disk_format != BOOT_PROPERTIES[key]:
            raise InvalidInput(
                f"The {key} of image {image.name} must be an {BOOT_PROPERTIES[key]} image; "
                f"{row.name} is {row.disk_format}."
            )
        result[key] = row
    return result


def check_image_bootable(image: Image, flavor) -> None:
    """Raise InvalidInput unless an instance of ``flavor`` can boot from ``image``: the image is active,
    a disk (not a kernel or ramdisk), fits the flavor's root disk and RAM, and its kernel and ramdisk
    (for direct kernel boot) exist and are active."""
    if image.status != Image.ACTIVE:
        raise InvalidInput(f"Image {image.name} is {image.status}, not active: it cannot boot.")
    if image.disk_format in KERNEL_FORMATS:
        raise InvalidInput(
            f"Image {image.name} is a {image.disk_format} (kernel or ramdisk) image: boot a disk image "
            "that names it as its kernel_id or ramdisk_id instead."
        )
    if flavor.disk_gb > 0 and image.min_disk > flavor.disk_gb:
        raise InvalidInput(
            f"Image {image.name} needs a root disk of at least {image.min_disk} GB; "
            f"flavor {flavor.name} has {flavor.disk_gb} GB."
        )
    if image.min_ram > flavor.ram_mb:
        raise InvalidInput(
            f"Image {image.name} needs at least {image.min_ram} MB of RAM; flavor {flavor.name} has "
            f"{flavor.ram_mb} MB."
        )
    _boot_images(image)


def image_fetch_url(image: Image, project_id=None, via: Image | None = None) -> str:
    """An absolute URL from which a compute host downloads ``image``'s bytes without credentials.

    Its signed token names the image and checksum, the project the download is for (default: the
    image's own) and, for a kernel or ramdisk, the disk image ``via`` that boots with it; and it carries
    its expiry, ``ZENITH_IMAGE_URL_TTL`` seconds from now. ``open_signed_image_data`` checks all of them
    again at download time.
    """
    payload = {
        "i": str(image.pk),
        "c": image.checksum,
        "p": str(project_id or image.project_id or "") or None,
        "v": str(via.pk) if via is not None else None,
        "e": int(time.time()) + settings.ZENITH_IMAGE_URL_TTL,
    }
    token = signing.dumps(payload, salt=TOKEN_SALT, compress=False)
    return settings.ZENITH_PORTAL_URL.rstrip("/") + reverse("image-data", kwargs={"token": token})


def _image_token(token: str) -> dict:
    """The verified payload of a fetch URL's token: signed by us for this purpose, not expired, and
    neither signed in the future nor valid for longer than the configured lifetime (with the public
    default key anyone could mint tokens; a far-future one must not outlive a key change)."""
    try:
        data = signing.loads(token, salt=TOKEN_SALT, max_age=settings.ZENITH_IMAGE_URL_TTL)
    except signing.SignatureExpired:
        raise PolicyDenied("This image URL has expired: ask for a new one.", code="url_expired") from None
    except signing.BadSignature:
        raise PolicyDenied("This image URL is not valid.", code="bad_signature") from None
    if not isinstance(data, dict) or not isinstance(data.get("i"), str) or not isinstance(data.get("c"), str):
        raise PolicyDenied("This image URL is not valid.", code="bad_signature")
    now = time.time()
    signed_at = signing.b62_decode(token.rsplit(":", 2)[-2])
    expires = data.get("e")
    if isinstance(expires, bool) or not isinstance(expires, int) or signed_at > now + TOKEN_CLOCK_SKEW:
        raise PolicyDenied("This image URL is not valid.", code="bad_signature")
    if expires > now + settings.ZENITH_IMAGE_URL_TTL + TOKEN_CLOCK_SKEW:
        raise PolicyDenied("This image URL claims a lifetime longer than allowed.", code="bad_signature")
    if expires < now:
        raise PolicyDenied("This image URL has expired: ask for a new one.", code="url_expired")
    for key in ("p", "v"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise PolicyDenied("This image URL is not valid.", code="bad_signature")
    return data


def read_image_token(token: str) -> tuple[str, str]:
    """The (image id, checksum) a fetch URL's token was signed for; PolicyDenied when it was tampered
    with, has expired, or claims a lifetime beyond ``ZENITH_IMAGE_URL_TTL``."""
    data = _image_token(token)
    return data["i"], data["c"]


def _still_entitled(image: Image, data: dict) -> bool:
    """Whether the project a token was issued for may still use the image now: the image (or, for a
    kernel or ramdisk, the disk image that names it) is public, the project's own, or shared with it
    and accepted. A project removed from an image's members cannot download it with an old URL."""
    root = image
    if data.get("v"):
        try:
            root = Image.objects.exclude(status=Image.DELETED).filter(pk=data["v"]).first()
        except (ValueError, ValidationError):
            return False
        names = {(root.properties or {}).get(key) for key in BOOT_PROPERTIES} if root else set()
        if root is None or str(image.pk) not in names:
            return False
    project_id = data.get("p")
    if not project_id:
        return root.visibility == Image.PUBLIC
    try:
        return Image.objects.usable_by_project(project_id).filter(pk=root.pk).exists()
    except (ValueError, ValidationError):
        return False


def open_signed_image_data(token: str) -> tuple[Image, Any]:
    """The image a signed fetch URL names and its open bytes (for the host-facing download view)."""
    data = _image_token(token)
    image_id, checksum = data["i"], data["c"]
    try:
        image = Image.objects.get(pk=image_id)
    except (Image.DoesNotExist, ValueError, ValidationError):
        raise NotFound("No such image.") from None
    if image.status == Image.DELETED or image.checksum != checksum:
        raise NotFound(f"Image {image_id} is no longer available.")
    if not _still_entitled(image, data):
        raise PolicyDenied(
            "The project this image URL was issued for may no longer use the image.", code="not_entitled"
        )
    return image, _open_bytes(image)


def _spec(image: Image, project_id, via: Image | None = None) -> dict:
    return {
        "id": str(image.pk),
        "name": image.name,
        "url": image_fetch_url(image, project_id, via),
        "checksum": image.checksum,
        "size": image.size,
        "disk_format": image.disk_format,
    }


def image_boot_spec(image: Image, project_id=None) -> dict:
    """What a host agent needs to boot ``image`` for ``project_id`` (default: the image's own project)
    (JSON-serialisable): id, name, signed fetch url, sha256 checksum, size, disk format, and the same
    for its kernel and ramdisk (None when unset)."""
    boot = _boot_images(image)
    return {
        **_spec(image, project_id),
        "kernel": _spec(boot["kernel_id"], project_id, image) if boot["kernel_id"] else None,
        "ramdisk": _spec(boot["ramdisk_id"], project_id, image) if boot["ramdisk_id"] else None,
    }


# --- seeding ------------------------------------------------------------------------------------


def demo_qcow2(virtual_size: int = 1 << 30, cluster_bits: int = 16) -> bytes:
    """A valid, empty qcow2 (version 2) disk of ``virtual_size`` bytes, as ``qemu-img create`` lays it
    out: header, refcount table, one refcount block, then the L1 table (all entries unallocated)."""
    cluster = 1 << cluster_bits
    l2_coverage = (cluster // 8) * cluster  # an L2 table holds cluster/8 entries of one cluster each
    l1_size = -(-virtual_size // l2_coverage)
    refcount_table, refcount_block, l1_table = cluster, 2 * cluster, 3 * cluster
    header = struct.pack(
        ">4sIQIIQIIQQIIQ",
        b"QFI\xfb",
        2,  # version
        0,  # backing_file_offset
        0,  # backing_file_size
        cluster_bits,
        virtual_size,
        0,  # crypt_method
        l1_size,
        l1_table,
        refcount_table,
        1,  # refcount_table_clusters
        0,  # nb_snapshots
        0,  # snapshots_offset
    )
    used_clusters = 3 + -(-l1_size * 8 // cluster)
    data = bytearray(l1_table + l1_size * 8)
    data[: len(header)] = header
    struct.pack_into(">Q", data, refcount_table, refcount_block)
    for index in range(used_clusters):  # version 2 refcounts are 16 bits
        struct.pack_into(">H", data, refcount_block + 2 * index, 1)
    return bytes(data)


@transaction.atomic
def seed_images() -> list[Image]:
    """Make sure the public demo image ``zenith-demo`` (an empty 1 GiB qcow2) exists with its bytes
    (idempotent). Returns the images it created or repaired."""
    data = demo_qcow2()
    checksum = hashlib.sha256(data).hexdigest()
    image = (
        Image.objects.select_for_update()
        .filter(name=DEMO_IMAGE_NAME, project=None, status=Image.ACTIVE)
        .first()
    )
    if image is not None and image.checksum == checksum and default_storage.exists(image.file.name):
        return []
    if image is None:
        image = Image(
            name=DEMO_IMAGE_NAME,
            visibility=Image.PUBLIC,
            disk_format="qcow2",
            container_format="bare",
            min_disk=1,
            properties={"description": "An empty 1 GiB qcow2 disk for trying Zenith out."},
        )
    name = _storage_name(image)
    _remove_bytes(name)
    image.file.name = default_storage.save(name, ContentFile(data))
    image.size, image.checksum, image.status = len(data), checksum, Image.ACTIVE
    image.save()
    return [image]
