"""Login throttling: every password login (API tokens, the dashboard, Django admin) goes through
``ThrottledModelBackend``. ``ZENITH_LOGIN_MAX_FAILURES`` failures of one username within
``ZENITH_LOGIN_LOCKOUT`` seconds lock that username for that long (four times as many lock the
client address, against spraying one password over many names); a locked try is refused before the
password is hashed, so guessing costs the server nothing more. A successful login clears the
username's count."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone

from .errors import ZenithError
from .models import LoginThrottle

ADDRESS_FACTOR = 4


class TooManyAttempts(ZenithError):
    """Logins refused for a while after too many failures (HTTP 429, with Retry-After)."""

    status = 429
    code = "too_many_attempts"

    def __init__(self, retry_after: int):
        minutes = max(1, round(retry_after / 60))
        super().__init__(
            f"Too many failed logins: try again in about {minutes} minute{'s' if minutes > 1 else ''}."
        )
        self.retry_after = retry_after


def _keys(username: str | None, address: str | None) -> list[tuple[str, int]]:
    """The counters a try touches, each with its limit."""
    limit = settings.ZENITH_LOGIN_MAX_FAILURES
    keys = []
    if username:
        keys.append((f"user:{username.strip().lower()[:150]}", limit))
    if address:
        keys.append((f"addr:{address[:100]}", limit * ADDRESS_FACTOR))
    return keys


def check(username: str | None, address: str | None = None) -> None:
    """Raise TooManyAttempts while the username or the address is locked (one query)."""
    if settings.ZENITH_LOGIN_MAX_FAILURES <= 0:
        return
    now = timezone.now()
    keys = [key for key, _ in _keys(username, address)]
    locked = LoginThrottle.objects.filter(key__in=keys, locked_until__gt=now).order_by("-locked_until")
    until = locked.values_list("locked_until", flat=True).first()
    if until is not None:
        raise TooManyAttempts(max(1, int((until - now).total_seconds())))


def record_failure(username: str | None, address: str | None = None) -> None:
    """Count a failed login; lock each counter that reaches its limit."""
    if settings.ZENITH_LOGIN_MAX_FAILURES <= 0:
        return
    now = timezone.now()
    period = timedelta(seconds=settings.ZENITH_LOGIN_LOCKOUT)
    for key, limit in _keys(username, address):
        with transaction.atomic():
            try:
                with transaction.atomic():
                    LoginThrottle.objects.get_or_create(key=key, defaults={"window_start": now})
            except IntegrityError:  # created by a concurrent failure: count on it
                pass
            row = LoginThrottle.objects.select_for_update().get(key=key)
            if row.window_start <= now - period:
                row.failures, row.window_start = 0, now
            row.failures += 1
            if row.failures >= limit:
                row.locked_until = now + period
                row.failures, row.window_start = 0, now
            row.save()


def reset(username: str | None) -> None:
    """A successful login clears the username's count (not the address's: a shared NAT keeps it)."""
    keys = [key for key, _ in _keys(username, None)]
    LoginThrottle.objects.filter(key__in=keys).delete()


def client_address(request) -> str | None:
    """The address a login comes from (REMOTE_ADDR: behind a proxy, set the proxy to pass the client's)."""
    return request.META.get("REMOTE_ADDR") if request is not None else None


class ThrottledModelBackend(ModelBackend):
    """Django's password backend behind the login throttle. ``address`` may be passed as a credential
    by callers that have no request (the token service)."""

    def authenticate(self, request, username=None, password=None, address=None, **kwargs):
        address = address or client_address(request)
        try:
            check(username, address)
        except TooManyAttempts:
            raise PermissionDenied from None  # stop here: no other backend, no password hashing
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            if username is not None and password is not None:
                record_failure(username, address)
        else:
            reset(username)
        return user
