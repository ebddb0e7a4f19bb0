"""Dashboard forms for instances. They parse input; compute.services decides what is valid."""

import uuid

from django import forms

from identity.forms import IdempotentForm, key_value_lines
from storage.forms import size_field

# What the instance boots from: an image (a disk on its host), an existing bootable volume, or a new
# volume made from an image (Nova's block_device_mapping_v2 source_type volume / image).
IMAGE, VOLUME, IMAGE_TO_VOLUME = "image", "volume", "image_to_volume"
BOOT_SOURCES = [
    (IMAGE, "Image"),
    (VOLUME, "Existing volume"),
    (IMAGE_TO_VOLUME, "Image to a new volume"),
]

# Which wizard step each field is on (a re-rendered form opens the first step with an error).
STEPS = [
    ("details", "Details", ("name",)),
    ("source", "Source", ("source", "image", "boot_volume", "volume_size", "delete_on_termination")),
    ("flavor", "Flavor", ("flavor",)),
    ("keypair", "Key pair", ("key_name",)),
    ("configuration", "Configuration", ("user_data", "metadata")),
]


class LaunchForm(forms.Form):
    """The launch wizard: one form whose fields are spread over the steps in ``STEPS``."""

    name = forms.CharField(
        max_length=255, label="Instance name", error_messages={"required": "Give the instance a name."}
    )
    source = forms.ChoiceField(choices=BOOT_SOURCES, initial=IMAGE, required=False, label="Boot from")
    image = forms.CharField(required=False)
    boot_volume = forms.CharField(required=False, label="Volume")
    volume_size = size_field("Volume size (GiB)", "Empty: the image's size (at least 1 GiB).")
    delete_on_termination = forms.BooleanField(
        required=False, label="Delete the volume when the instance is deleted"
    )
    flavor = forms.CharField(error_messages={"required": "Choose a flavor (step Flavor)."})
    key_name = forms.CharField(required=False, max_length=255, label="Key pair")
    user_data = forms.CharField(
        required=False,
        strip=False,
        label="User data",
        widget=forms.Textarea(attrs={"rows": 6, "placeholder": "#cloud-config"}),
        help_text="Handed to the guest's cloud-init (at most 64 KiB).",
    )
    metadata = forms.CharField(
        required=False,
        label="Metadata",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "role=web"}),
        help_text="One key=value per line.",
    )
    idempotency_key = forms.CharField(required=False, max_length=255, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A fresh key whenever the form is drawn: submitting it twice (a double click, a reload of the
        # POST) launches one instance; a corrected form after a refusal is a new request.
        self.new_idempotency_key = str(uuid.uuid4())

    def clean_metadata(self) -> dict[str, str]:
        return key_value_lines(self.cleaned_data["metadata"], "Metadata line")

    def clean(self):
        data = super().clean()
        source = data.get("source") or IMAGE
        data["source"] = source
        if source in (IMAGE, IMAGE_TO_VOLUME) and not data.get("image"):
            self.add_error("image", "Choose an image to boot from (step Source).")
        if source == VOLUME:
            if not data.get("boot_volume"):
                self.add_error("boot_volume", "Choose a volume to boot from (step Source).")
            if data.get("volume_size") is not None:
                self.add_error("volume_size", "An existing volume keeps its size: leave the size empty.")
        if source == IMAGE and data.get("volume_size") is not None:
            self.add_error(
                "volume_size", "A size is for a new volume: choose Image to a new volume, or leave it empty."
            )
        return data

    def boot_kwargs(self) -> dict:
        """The boot source's arguments of ``compute.services.create_instance``."""
        data = self.cleaned_data
        if data["source"] == VOLUME:
            return {
                "image": None,
                "boot_volume": data["boot_volume"],
                "boot_from_volume": {"delete_on_termination": data["delete_on_termination"]},
            }
        if data["source"] == IMAGE_TO_VOLUME:
            spec = {"delete_on_termination": data["delete_on_termination"]}
            if data["volume_size"] is not None:
                spec["size"] = data["volume_size"]
            return {"image": data["image"], "boot_from_volume": spec}
        return {"image": data["image"]}

    def chosen_source(self) -> str:
        value = self.data.get("source") if self.is_bound else None
        return value if value in dict(BOOT_SOURCES) else IMAGE

    def first_step_with_errors(self) -> str | None:
        for step, _label, fields in STEPS:
            if any(self.errors.get(f) for f in fields):
                return step
        return None


class SnapshotForm(IdempotentForm):
    """The name of an instance's snapshot (a new private image of the project)."""

    name = forms.CharField(
        max_length=255,
        label="Snapshot name",
        help_text="The new image's name; it is private to this project.",
    )


class RebuildForm(IdempotentForm):
    """The image an instance is rebuilt from (the images it may boot: active disks, not kernels)."""

    image = forms.ChoiceField(label="Image", help_text="Its root disk is made anew from this image.")

    def __init__(self, *args, images=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["image"].choices = [(str(i.pk), i.name) for i in images]


class InstanceFilterForm(forms.Form):
    """The instances table's filter: name contains, status."""

    q = forms.CharField(required=False, max_length=255, label="Name")
    status = forms.ChoiceField(
        required=False,
        choices=[("", "any status")]
        + [(s, s) for s in ("ACTIVE", "BUILD", "SHUTOFF", "PAUSED", "SUSPENDED", "ERROR")],
    )


class ExplainForm(forms.Form):
    """The scheduler dry run: a flavor, and optionally a zone and a hypervisor type."""

    flavor = forms.ChoiceField(choices=())
    availability_zone = forms.CharField(required=False, max_length=64, label="Availability zone")
    hypervisor_type = forms.CharField(required=False, max_length=32, label="Hypervisor type")

    def __init__(self, *args, flavors=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["flavor"].choices = [(str(f.pk), f.name) for f in flavors]
