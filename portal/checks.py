"""Deployment checks (``manage.py check --deploy``) for what Django's own checks miss."""

from django.conf import settings
from django.core.checks import Error, Tags, register

from .secret_key import DEFAULT_SECRET_KEY


@register(Tags.security, deploy=True)
def check_secret_key(app_configs, **kwargs):
    """The public development key lets anyone sign image URLs and session cookies."""
    if settings.SECRET_KEY == DEFAULT_SECRET_KEY:
        return [
            Error(
                "SECRET_KEY is Zenith's public development default.",
                hint="Set DJANGO_SECRET_KEY, or generate var/secret_key with `manage.py ensure_secret_key`.",
                id="zenith.E001",
            )
        ]
    return []
