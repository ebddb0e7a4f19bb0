"""Compute API: images (DESIGN.md section 10). Metadata as JSON; the bytes through ``images/{id}/file``
(PUT uploads a raw body, GET downloads), and ``image-data/<token>`` for compute hosts (signed URL)."""

from __future__ import annotations

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import FileResponse
from django.urls import re_path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from identity.api.base import ScopedViewSet, ServiceWrites
from identity.api.strict import StrictBooleanField, StrictCharField, StrictIntegerField, StrictSerializer
from identity.errors import InvalidInput, NotFound
from identity.models import Project
from identity.scoping import is_uuid

from .. import services
from ..models import Image, ImageMember

UPLOAD_CHUNK = 1 << 20
OCTET_STREAM = "application/octet-stream"
IMAGE_ID = "[0-9a-fA-F-]{32,36}"


class ImageFileResponse(FileResponse):
    """Image bytes, sent in 1 MiB blocks (FileResponse's 4 KiB default makes big images slow)."""

    block_size = 1 << 20


def image_file_response(image: Image, data) -> ImageFileResponse:
    extension = {"qcow2": "qcow2", "raw": "img", "iso": "iso", "aki": "kernel", "ari": "initrd"}
    response = ImageFileResponse(
        data,
        as_attachment=True,
        filename=f"{image.name}.{extension.get(image.disk_format, 'img')}",
        content_type=OCTET_STREAM,
    )
    if image.size is not None:
        response["Content-Length"] = str(image.size)
    response["X-Image-Checksum-Sha256"] = image.checksum
    return response


# --- serializers --------------------------------------------------------------------------------


PROPERTIES = serializers.DictField(
    child=StrictCharField(allow_blank=True, max_length=4096, trim_whitespace=False),
    required=False,
    help_text="free-form string properties; kernel_id/ramdisk_id name aki/ari images for direct kernel boot",
)


class ImageSerializer(serializers.ModelSerializer):
    file = serializers.SerializerMethodField(help_text="where the bytes are uploaded (PUT) and downloaded")
    size = serializers.IntegerField(read_only=True, allow_null=True, help_text="bytes, once uploaded")
    checksum = serializers.CharField(read_only=True, help_text="sha256 of the bytes (hex), once uploaded")

    class Meta:
        model = Image
        fields = [
            "id",
            "name",
            "status",
            "visibility",
            "disk_format",
            "container_format",
            "size",
            "checksum",
            "min_disk",
            "min_ram",
            "protected",
            "properties",
            "project",
            "owner",
            "file",
            "created",
            "updated",
        ]
        read_only_fields = fields

    def get_file(self, obj) -> str:
        return f"/api/v1/compute/images/{obj.pk}/file"


class ImageCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=255)
    disk_format = serializers.ChoiceField(choices=services.DISK_FORMATS)
    container_format = serializers.ChoiceField(choices=services.CONTAINER_FORMATS, default="bare")
    visibility = serializers.ChoiceField(
        choices=[Image.PRIVATE, Image.SHARED, Image.PUBLIC],
        default=Image.PRIVATE,
        help_text="public: every project (cloud admins only); shared: the projects added as members",
    )
    min_disk = StrictIntegerField(min_value=0, default=0, help_text="GB of root disk needed")
    min_ram = StrictIntegerField(min_value=0, default=0, help_text="MB of RAM needed")
    protected = StrictBooleanField(default=False, help_text="cannot be deleted while set")
    properties = PROPERTIES


class ImageUpdateSerializer(StrictSerializer):
    name = StrictCharField(max_length=255, required=False)
    visibility = serializers.ChoiceField(choices=[Image.PRIVATE, Image.SHARED, Image.PUBLIC], required=False)
    min_disk = StrictIntegerField(min_value=0, required=False)
    min_ram = StrictIntegerField(min_value=0, required=False)
    protected = StrictBooleanField(required=False)
    properties = PROPERTIES


class ImageMemberRequestSerializer(StrictSerializer):
    project = StrictCharField(max_length=255, help_text="id or name of the project to share the image with")


class ImageMemberSerializer(serializers.ModelSerializer):
    project_name = serializers.CharField(source="project.name", read_only=True)
    status = serializers.CharField(
        read_only=True, help_text="pending until the member project accepts or rejects the image"
    )

    class Meta:
        model = ImageMember
        fields = ["image", "project", "project_name", "status", "created", "updated"]


class ImageMemberStatusSerializer(StrictSerializer):
    status = serializers.ChoiceField(
        choices=[value for value, _ in ImageMember.STATUSES],
        help_text="the member project's decision: accepted (use the image), rejected, or pending",
    )


MEMBER_STATUS_FILTERS = ("accepted", "pending", "rejected", "all")


class ImageFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="iexact")

    class Meta:
        model = Image
        fields = ["name", "status", "visibility", "disk_format", "protected"]


# --- views --------------------------------------------------------------------------------------


class ImageViewSet(
    ServiceWrites,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    ScopedViewSet,
):
    """Images: the public ones, your project's, and those shared with it. Create the record, then PUT
    its bytes to ``images/{id}/file``; its owning project's members change, share and delete it."""

    model = Image
    policy_prefix = "compute:image"
    serializer_class = ImageSerializer
    filterset_class = ImageFilterSet
    ordering_fields = ["name", "created", "size", "status"]

    def get_serializer_class(self):
        return {"create": ImageCreateSerializer, "partial_update": ImageUpdateSerializer}.get(
            self.action, ImageSerializer
        )

    def get_queryset(self):
        """The catalogue (accepted shares only); ``?member_status=`` lists the shared images offered to
        the caller's project by the status of its membership instead (Glance's member_status filter)."""
        queryset = super().get_queryset()
        if self.action != "list" or getattr(self, "swagger_fake_view", False):
            return queryset
        wanted = self.request.query_params.get("member_status", "accepted")
        if wanted not in MEMBER_STATUS_FILTERS:
            raise InvalidInput(
                f"member_status must be one of {', '.join(MEMBER_STATUS_FILTERS)}.",
                details={"member_status": ["Not a valid choice."]},
            )
        if wanted == "accepted":
            return queryset
        statuses = (ImageMember.PENDING, ImageMember.REJECTED) if wanted == "all" else (wanted,)
        offered = self.scope_queryset(Image.objects.offered_to(self.ctx, statuses))
        return (queryset | offered) if wanted == "all" else offered

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "member_status",
                OpenApiTypes.STR,
                enum=MEMBER_STATUS_FILTERS,
                description="accepted (default): the catalogue; pending or rejected: the shared images "
                "offered to your project with that membership status (where you accept or reject them); "
                "all: both",
            )
        ]
    )
    def list(self, request, *args, **kwargs):
        """The images your project can use; ``member_status=pending``: the shares awaiting its decision."""
        return super().list(request, *args, **kwargs)

    @extend_schema(request=ImageCreateSerializer, responses={201: ImageSerializer})
    def create(self, request, *args, **kwargs):
        """Register an image (status queued); upload its bytes next with PUT images/{id}/file."""
        body = ImageCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        image = services.create_image(self.ctx, **body.validated_data)
        return Response(ImageSerializer(image).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ImageUpdateSerializer, responses=ImageSerializer)
    def partial_update(self, request, *args, **kwargs):
        """Change name, visibility, minimum disk/RAM, protection or properties (replaced as a whole)."""
        image = self.get_object()
        body = ImageUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        image = services.update_image(self.ctx, image, **body.validated_data)
        return Response(ImageSerializer(image).data)

    delete_service = staticmethod(services.delete_image)

    @extend_schema(
        operation_id="v1_compute_images_file_upload",
        request={OCTET_STREAM: OpenApiTypes.BINARY},
        responses={200: ImageSerializer},
        description="Upload the image's bytes as the raw request body (Content-Type "
        "application/octet-stream, with Content-Length). Once only: the image goes queued -> saving -> "
        "active, or killed on failure.",
    )
    def upload(self, request, pk=None):
        image = self.get_object()
        content_type = request.content_type.split(";")[0].strip().lower()
        if content_type != OCTET_STREAM:
            raise UnsupportedMediaType(content_type or "none", detail=f"Send the bytes as {OCTET_STREAM}.")
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length <= 0:
            raise InvalidInput(
                "Send the image bytes as the request body, with a Content-Length header.",
                code="length_required",
            )
        image = services.upload_image_data(self.ctx, image, _body_chunks(request), expected_size=length)
        return Response(ImageSerializer(image).data)

    @extend_schema(
        operation_id="v1_compute_images_file_download",
        request=None,
        responses={(200, OCTET_STREAM): OpenApiTypes.BINARY},
        description="Download the bytes of an active image (409 while it has none).",
    )
    def download(self, request, pk=None):
        image = self.get_object()
        return image_file_response(image, services.open_image_data(self.ctx, image))

    def _member_project(self, value: str) -> Project:
        """By id any project (ids are not guessable); by name only the projects the caller can see."""
        project = Project.objects.filter(pk=value).first() if is_uuid(value) else None
        if project is None:
            project = Project.objects.visible_to(self.ctx).filter(name=value).first()
        if project is None:
            raise InvalidInput("No such project.", details={"project": ["No such project."]})
        return project

    @extend_schema(request=None, responses=ImageMemberSerializer(many=True), methods=["GET"])
    @extend_schema(
        request=ImageMemberRequestSerializer, responses={201: ImageMemberSerializer}, methods=["POST"]
    )
    @action(
        detail=True, methods=["get", "post"], url_path="members", pagination_class=None, filter_backends=[]
    )
    def members(self, request, pk=None):
        """The projects a shared image is shared with (its owners and admins): list, or add one (POST)."""
        image = self.get_object()
        if request.method == "GET":
            rows = services.list_image_members(self.ctx, image)
            return Response(ImageMemberSerializer(rows, many=True).data)
        body = ImageMemberRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        member = services.add_image_member(
            self.ctx, image, self._member_project(body.validated_data["project"])
        )
        return Response(ImageMemberSerializer(member).data, status=status.HTTP_201_CREATED)

    def _membership_image(self) -> Image:
        """The image of a membership request: one the caller can see, or one offered to its project
        (pending or rejected), so a member can decide on an image that is not in its catalogue yet."""
        try:
            return self.get_object()
        except NotFound:
            statuses = (ImageMember.PENDING, ImageMember.REJECTED)
            try:
                return Image.objects.offered_to(self.ctx, statuses).get(pk=self.kwargs["pk"])
            except (Image.DoesNotExist, ValueError, DjangoValidationError):
                raise NotFound("No such image.") from None

    @extend_schema(
        request=None,
        responses=ImageMemberSerializer,
        parameters=[OpenApiParameter("project_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        methods=["GET"],
        description="One membership with its status (the image's owners, or the member project).",
    )
    @extend_schema(
        request=ImageMemberStatusSerializer,
        responses=ImageMemberSerializer,
        parameters=[OpenApiParameter("project_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        methods=["PUT"],
        description="The member project accepts or rejects an image shared with it (Glance's PUT "
        "/images/{id}/members/{member}); only accepted images are listed and resolvable by name.",
    )
    @extend_schema(
        request=None,
        responses={204: None},
        parameters=[OpenApiParameter("project_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        methods=["DELETE"],
        description="The image's owners stop sharing it with the project; the member project itself "
        "leaves it (its membership becomes rejected, so the image cannot be pushed to it again).",
    )
    @action(
        detail=True,
        methods=["get", "put", "delete"],
        url_path=rf"members/(?P<project_id>{IMAGE_ID})",
        url_name="member-detail",
        filter_backends=[],
    )
    def member_detail(self, request, pk=None, project_id=None):
        """One membership: show it, decide on it (PUT, the member), or end it (DELETE)."""
        image = self._membership_image()
        project = Project.objects.filter(pk=project_id).first() if is_uuid(project_id) else None
        if project is None:
            raise NotFound("No such project.")
        if request.method == "GET":
            member = services.get_image_member(self.ctx, image, project)
            return Response(ImageMemberSerializer(member).data)
        if request.method == "PUT":
            body = ImageMemberStatusSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            member = services.set_image_member_status(self.ctx, image, project, body.validated_data["status"])
            return Response(ImageMemberSerializer(member).data)
        is_owner = image.project_id is not None and image.project_id == self.ctx.project_id
        if project.pk == self.ctx.project_id and not is_owner:
            services.set_image_member_status(self.ctx, image, project, ImageMember.REJECTED)
        else:
            services.remove_image_member(self.ctx, image, project)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _body_chunks(request):
    """The raw request body in 1 MiB chunks, read from the stream (never ``request.body``)."""
    stream = request.stream
    if stream is None:
        return
    while chunk := stream.read(UPLOAD_CHUNK):
        yield chunk


class ImageDataView(APIView):
    """Image bytes for compute hosts: no user credentials, the signed and expiring token in the URL is
    the credential (``compute.services.image_fetch_url`` makes it)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="v1_compute_image_data_retrieve",
        auth=[],
        request=None,
        responses={
            (200, OCTET_STREAM): OpenApiTypes.BINARY,
            403: OpenApiResponse(description="the token was tampered with or has expired"),
            404: OpenApiResponse(description="the image no longer exists"),
        },
    )
    def get(self, request, token: str):
        """Download an image's bytes with a signed URL (for compute hosts)."""
        image, data = services.open_signed_image_data(token)
        return image_file_response(image, data)


class VolumeUploadView(APIView):
    """An image's bytes from a host (a volume uploaded to an image, an instance's snapshot): no user
    credentials, the signed, expiring token naming the queued image is the credential; once only."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="v1_compute_image_volume_upload",
        auth=[],
        request={OCTET_STREAM: OpenApiTypes.BINARY},
        responses={
            204: OpenApiResponse(description="stored"),
            403: OpenApiResponse(description="the token was tampered with or has expired"),
            409: OpenApiResponse(description="the image is no longer queued"),
        },
    )
    def put(self, request, token: str):
        """Receive the bytes for the queued image the signed URL names (storage and compute hosts)."""
        from ..services import image_uploads

        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0) or None
        except ValueError:
            length = None
        image_uploads.receive_upload(token, _body_chunks(request), expected_size=length)
        return Response(status=204)


_file_view = ImageViewSet.as_view({"get": "download", "put": "upload"}, detail=True, basename="image")

urlpatterns = [
    re_path(rf"^images/(?P<pk>{IMAGE_ID})/file$", _file_view, name="image-file"),
    re_path(r"^image-data/(?P<token>[A-Za-z0-9_:=-]{1,1000})$", ImageDataView.as_view(), name="image-data"),
    re_path(
        r"^image-upload/(?P<token>[A-Za-z0-9_:=-]{1,1000})$",
        VolumeUploadView.as_view(),
        name="image-volume-upload",
    ),
]
