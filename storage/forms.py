"""Dashboard forms for volumes, snapshots, volume types. They parse input; storage.services decides
what is valid (a refusal comes back as a form error)."""

from __future__ import annotations

from django import forms

from identity.forms import IdempotentForm, key_value_lines

from .models import Volume
from .services.volumes import MAX_SIZE_GB, RESETTABLE

SOURCES = [
    (Volume.BLANK, "Blank volume"),
    (Volume.IMAGE, "Image"),
    (Volume.SNAPSHOT, "Snapshot"),
    (Volume.VOLUME, "Another volume (clone)"),
]


# The create form's fields each source does not use.
HIDDEN_FOR = {
    Volume.BLANK: {"image", "snapshot", "source_volume"},
    Volume.IMAGE: {"snapshot", "source_volume"},
    Volume.SNAPSHOT: {"image", "source_volume", "volume_type"},
    Volume.VOLUME: {"image", "snapshot", "volume_type"},
}


class ShownFields:
    """Some of a form's fields, drawn by portal/_form_fields.html as if they were the whole form."""

    def __init__(self, form: forms.Form, fields: list):
        self.form, self.fields = form, fields

    def visible_fields(self) -> list:
        return self.fields

    def non_field_errors(self):
        return self.form.non_field_errors()


def size_field(label: str, help_text: str) -> forms.IntegerField:
    """An optional volume size in whole GiB, within what the services accept."""
    return forms.IntegerField(
        required=False, min_value=1, max_value=MAX_SIZE_GB, label=label, help_text=help_text
    )


class VolumeCreateForm(IdempotentForm):
    """A new volume: blank (size and type), or from an image, a snapshot or another volume."""

    name = forms.CharField(max_length=255, error_messages={"required": "Give the volume a name."})
    description = forms.CharField(required=False, max_length=1024, widget=forms.Textarea(attrs={"rows": 2}))
    source = forms.ChoiceField(choices=SOURCES, initial=Volume.BLANK, label="Source")
    image = forms.ChoiceField(required=False, choices=(), label="Image", help_text="For the Image source.")
    snapshot = forms.ChoiceField(
        required=False, choices=(), label="Snapshot", help_text="For the Snapshot source."
    )
    source_volume = forms.ChoiceField(
        required=False, choices=(), label="Volume to clone", help_text="For the clone source."
    )
    size = size_field(
        "Size (GiB)", "Required for a blank volume; from a source, empty means the source's size."
    )
    volume_type = forms.ChoiceField(
        required=False,
        choices=(),
        label="Volume type",
        help_text="A snapshot or clone keeps its origin's type.",
    )

    def __init__(self, *args, images=(), snapshots=(), volumes=(), types=(), **kwargs):
        super().__init__(*args, **kwargs)
        none = [("", "—")]
        self.fields["image"].choices = none + list(images)
        self.fields["snapshot"].choices = none + list(snapshots)
        self.fields["source_volume"].choices = none + list(volumes)
        self.fields["volume_type"].choices = list(types) or none  # the default type first

    def clean(self):
        data = super().clean()
        source = data.get("source")
        needed = {Volume.IMAGE: "image", Volume.SNAPSHOT: "snapshot", Volume.VOLUME: "source_volume"}
        if source == Volume.BLANK and data.get("size") is None and "size" not in self.errors:
            self.add_error("size", "A blank volume needs a size.")
        field = needed.get(source)
        if field and not data.get(field) and field not in self.errors:
            self.add_error(field, f"Choose the {self.fields[field].label.lower()} to start from.")
        return data

    def current_source(self) -> str:
        value = (self.data.get("source") if self.is_bound else None) or self.initial.get("source")
        return value if value in dict(SOURCES) else Volume.BLANK

    def shown(self) -> ShownFields:
        """The fields the chosen source uses (the page redraws them when the source changes)."""
        hidden = {"source", *HIDDEN_FOR[self.current_source()]}  # the page draws the source itself
        return ShownFields(self, [f for f in self.visible_fields() if f.name not in hidden])

    def service_kwargs(self) -> dict:
        """The arguments of ``services.create_volume`` this form's answers mean."""
        data = self.cleaned_data
        source = data["source"]
        return {
            "name": data["name"],
            "description": data["description"] or None,
            "size": data["size"],
            "volume_type": (data["volume_type"] or None) if source in (Volume.BLANK, Volume.IMAGE) else None,
            "image": data["image"] if source == Volume.IMAGE else None,
            "snapshot": data["snapshot"] if source == Volume.SNAPSHOT else None,
            "source_volume": data["source_volume"] if source == Volume.VOLUME else None,
            "idempotency_key": data["idempotency_key"] or None,
        }


class ExtendForm(forms.Form):
    new_size = forms.IntegerField(
        min_value=1,
        max_value=MAX_SIZE_GB,
        label="New size (GiB)",
        error_messages={"required": "Give the new size in GiB."},
    )


class SnapshotForm(IdempotentForm):
    name = forms.CharField(max_length=255, error_messages={"required": "Give the snapshot a name."})
    description = forms.CharField(required=False, max_length=1024, widget=forms.Textarea(attrs={"rows": 2}))


class UploadToImageForm(IdempotentForm):
    """A new image of the volume's bytes (Cinder's os-volume_upload_image)."""

    image_name = forms.CharField(
        max_length=255, label="Image name", error_messages={"required": "Give the image a name."}
    )
    disk_format = forms.ChoiceField(
        choices=[("raw", "raw"), ("qcow2", "qcow2")],
        initial="raw",
        label="Disk format",
        help_text="The format the volume's bytes are stored in on its backend.",
    )

    @staticmethod
    def service_kwargs(data: dict) -> dict:
        """The arguments of ``services.upload_to_image`` this form's cleaned answers mean."""
        key = data["idempotency_key"] or None
        return {"name": data["image_name"], "disk_format": data["disk_format"], "idempotency_key": key}


class ResetStateForm(forms.Form):
    status = forms.ChoiceField(choices=[(s, s) for s in RESETTABLE])


class VolumeTypeForm(forms.Form):
    """Admins: a new volume type on a backend the storage hosts report."""

    name = forms.CharField(max_length=64)
    backend = forms.CharField(max_length=64, initial="default", help_text="A backend name hosts report.")
    description = forms.CharField(required=False, max_length=1024)
    extra_specs = forms.CharField(
        required=False,
        label="Extra specs",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "thin=true"}),
        help_text="One key=value per line.",
    )
    is_default = forms.BooleanField(required=False, label="Make it the default type")

    def clean_extra_specs(self) -> dict[str, str]:
        return key_value_lines(self.cleaned_data["extra_specs"], "Extra specs line")
