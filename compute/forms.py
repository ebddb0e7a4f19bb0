"""Dashboard forms for compute. They parse input; compute.services decides what is valid."""

from django import forms

from identity.forms import key_value_lines


class FlavorForm(forms.Form):
    name = forms.CharField(max_length=64)
    vcpus = forms.IntegerField(label="vCPUs", initial=1)
    ram_mb = forms.IntegerField(label="RAM (MB)", initial=2048)
    disk_gb = forms.IntegerField(label="Root disk (GB)", initial=20)
    ephemeral_gb = forms.IntegerField(label="Ephemeral disk (GB)", initial=0)
    swap_mb = forms.IntegerField(label="Swap (MB)", initial=0)
    is_public = forms.BooleanField(required=False, initial=True, label="Public")
    description = forms.CharField(required=False, widget=forms.TextInput)
    extra_specs = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "hw:cpu_policy=dedicated"}),
        help_text="One key=value per line.",
    )

    def clean_extra_specs(self) -> dict[str, str]:
        return key_value_lines(self.cleaned_data["extra_specs"], "Line")
