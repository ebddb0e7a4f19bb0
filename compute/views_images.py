"""Dashboard: the Images page (list what the project can see, upload, download, delete, and accept or
reject the images other projects offer it)."""

import django_tables2 as tables
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_POST

from identity.dashboard import (
    call_service,
    forbidden_unless,
    not_found,
    paginated,
    permitted_object,
    status_badge,
)
from identity.errors import NotFound

from . import services
from .api.images import image_file_response
from .models import Image, ImageMember


class ImageUploadForm(forms.Form):
    """Parses the upload form; compute.services decides what is valid."""

    name = forms.CharField(max_length=255)
    file = forms.FileField(label="Image file", help_text="qcow2, raw or iso; streamed to the image store.")
    disk_format = forms.ChoiceField(choices=Image.DISK_FORMATS, initial="qcow2", label="Format")
    visibility = forms.ChoiceField(
        choices=[(Image.PRIVATE, "private (this project)"), (Image.SHARED, "shared (with named projects)")],
        initial=Image.PRIVATE,
    )
    min_disk = forms.IntegerField(label="Minimum disk (GB)", initial=0, min_value=0)
    min_ram = forms.IntegerField(label="Minimum RAM (MB)", initial=0, min_value=0)
    protected = forms.BooleanField(required=False, label="Protected (cannot be deleted)")

    def __init__(self, *args, can_publicize: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if can_publicize:
            self.fields["visibility"].choices = [
                *self.fields["visibility"].choices,
                (Image.PUBLIC, "public (every project)"),
            ]


PENDING_SHOWN = 50  # offers listed at once: another project must not be able to flood the page


class ImageTable(tables.Table):
    status = tables.Column()
    size = tables.Column(verbose_name="Size")
    checksum = tables.Column(verbose_name="SHA-256", orderable=False)
    min_disk = tables.Column(verbose_name="Min disk (GB)")
    min_ram = tables.Column(verbose_name="Min RAM (MB)")
    protected = tables.BooleanColumn()
    project = tables.Column(accessor="project__name", verbose_name="Owner", default="cloud")
    actions = tables.TemplateColumn(
        template_name="compute/_image_actions.html", orderable=False, verbose_name=""
    )

    class Meta:
        model = Image
        fields = ("name", "status", "visibility", "disk_format", "size", "checksum", "min_disk", "min_ram")
        attrs = {"class": "table table-sm table-hover align-middle"}
        row_attrs = {"data-name": lambda record: record.name, "data-status": lambda record: record.status}

    def render_status(self, value):
        return status_badge(value)

    def render_size(self, value):
        return filesizeformat(value)

    def render_checksum(self, value):
        return format_html('<code class="small" title="{}">{}…</code>', value, value[:12])


def _visible_image(request, pk):
    try:
        return Image.objects.get_visible(request.zenith, pk=pk)
    except NotFound:
        return None


@login_required
def images(request):
    """The images the current project can see, with a form to upload one."""
    if (denied := forbidden_unless(request, "compute:image:list")) is not None:
        return denied
    ctx = request.zenith
    form = ImageUploadForm(can_publicize=ctx.can("compute:image:publicize"))
    return _page(request, form)


def _page(request, form, status: int = 200):
    """The images page: the catalogue, the upload form, and the offers awaiting this project's decision."""
    ctx = request.zenith
    table = ImageTable(Image.objects.visible_to(ctx).select_related("project"))
    pending = Image.objects.offered_to(ctx, (ImageMember.PENDING,)).select_related("project")
    context = {"table": paginated(request, table), "form": form, "pending": pending[:PENDING_SHOWN]}
    return render(request, "compute/images.html", context, status=status)


@login_required
@require_POST
def image_upload(request):
    """Create the image and stream the uploaded file (kept on disk by Django for big files) into it."""
    if (denied := forbidden_unless(request, "compute:image:create")) is not None:
        return denied
    ctx = request.zenith
    form = ImageUploadForm(request.POST, request.FILES, can_publicize=ctx.can("compute:image:publicize"))
    if form.is_valid():
        data = dict(form.cleaned_data)
        upload = data.pop("file")
        fmt = data["disk_format"]
        data["container_format"] = fmt if fmt in ("aki", "ari") else "bare"

        def create_and_upload():
            image = services.create_image(ctx, **data)
            return services.upload_image_data(ctx, image, upload.chunks(), expected_size=upload.size)

        image = call_service(request, form, create_and_upload, success=f"Image {data['name']} uploaded.")
        if image is not None:
            return redirect("compute:images")
    upload = request.FILES.get("file")
    if upload is not None and "file" not in form.errors:
        # A browser never refills a file input: say so beside it, rather than let it look kept.
        form.add_error(
            "file", f"Choose {upload.name} again: a browser does not keep a file after a failed upload."
        )
    return _page(request, form, status=400)


@login_required
@require_GET
def image_download(request, pk):
    image = _visible_image(request, pk)
    if image is None:
        return not_found(request)
    data = call_service(request, None, lambda: services.open_image_data(request.zenith, image))
    if data is None:
        return redirect("compute:images")
    return image_file_response(image, data)


@login_required
@require_POST
def image_delete(request, pk):
    image, refused = permitted_object(
        request, "compute:image:delete", lambda _ctx: _visible_image(request, pk)
    )
    if refused is not None:
        return refused
    call_service(
        request, None, lambda: services.delete_image(request.zenith, image), f"Image {image.name} deleted."
    )
    return redirect("compute:images")


@login_required
@require_POST
def image_member_status(request, pk):
    """The current project accepts, rejects (or leaves) an image another project shared with it."""
    ctx = request.zenith
    decision = request.POST.get("status")
    offered = Image.objects.offered_to(ctx, (ImageMember.PENDING, ImageMember.REJECTED, ImageMember.ACCEPTED))
    image = offered.filter(pk=pk).first()
    if image is None or ctx.project is None:
        return not_found(request)
    verb = {ImageMember.ACCEPTED: "accepted", ImageMember.REJECTED: "rejected"}.get(decision)
    if verb is None:
        messages.error(request, "Choose to accept or reject the image.")
        return redirect("compute:images")
    call_service(
        request,
        None,
        lambda: services.set_image_member_status(ctx, image, ctx.project, decision),
        f"Image {image.name} {verb}.",
    )
    return redirect("compute:images")
