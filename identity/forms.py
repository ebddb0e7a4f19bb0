"""Dashboard forms for identity. They parse input; identity.services decides what is valid."""

import uuid

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from . import throttle
from .models import Project, Role, User


def key_value_lines(text: str, what: str = "Line") -> dict[str, str]:
    """A textarea of ``key=value`` lines (blank ones skipped) as a dict; a line without ``=`` or with an
    empty key is a form error naming it (``what`` and its number)."""
    items = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise forms.ValidationError(f"{what} {number} is not key=value.")
        items[key.strip()] = value.strip()
    return items


class IdempotentForm(forms.Form):
    """A create form with a fresh Idempotency-Key each time it is drawn: posting it twice (a double
    click, a reloaded POST) creates one resource."""

    idempotency_key = forms.CharField(required=False, max_length=255, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.new_idempotency_key = str(uuid.uuid4())


class KeyPairForm(forms.Form):
    name = forms.CharField(max_length=255)
    public_key = forms.CharField(
        required=False,
        widget=forms.Textarea(
            attrs={"rows": 3, "placeholder": "ssh-ed25519 AAAA... (leave empty to generate a new pair)"}
        ),
        help_text="Paste an OpenSSH public key to import it, or leave empty and Zenith generates a pair.",
    )
    key_type = forms.ChoiceField(
        choices=[("ed25519", "Ed25519"), ("rsa", "RSA 3072")],
        initial="ed25519",
        help_text="Type of key to generate when no public key is pasted.",
    )


class ProjectForm(forms.Form):
    name = forms.CharField(max_length=64)
    description = forms.CharField(required=False, widget=forms.TextInput)
    enabled = forms.BooleanField(required=False, initial=True)


class UserForm(forms.Form):
    username = forms.CharField(max_length=64)
    email = forms.EmailField(required=False)
    password = forms.CharField(widget=forms.PasswordInput, min_length=1)
    is_superuser = forms.BooleanField(required=False, label="Cloud admin (superuser)")


class RoleAssignmentForm(forms.Form):
    user = forms.ModelChoiceField(queryset=User.objects.order_by("username"), to_field_name="username")
    project = forms.ModelChoiceField(queryset=Project.objects.order_by("name"), to_field_name="name")
    role = forms.ModelChoiceField(queryset=Role.objects.order_by("name"), to_field_name="name")


class ThrottledAuthenticationForm(AuthenticationForm):
    """The dashboard's login form: says so when the username or address is locked after too many
    failed logins (the backend refuses those tries before hashing either way)."""

    def clean(self):
        try:
            throttle.check(self.data.get("username"), throttle.client_address(self.request))
        except throttle.TooManyAttempts as exc:
            raise forms.ValidationError(exc.message, code="too_many_attempts") from None
        return super().clean()
