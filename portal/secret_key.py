"""Where the portal's SECRET_KEY comes from: ``DJANGO_SECRET_KEY`` (or ``SECRET_KEY``) in the
environment, else the file ``make run`` generates on first start (``var/secret_key``), else the public
development default, which a production run (``ZENITH_ENV=production``) refuses and
``manage.py check --deploy`` flags. No Django imports: settings read it before Django is configured.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

# Public (it is in this repository): anyone can sign tokens with it. Development and tests only.
DEFAULT_SECRET_KEY = "zenith-insecure-development-key-change-me-in-production"
KEY_FILE_NAME = "secret_key"


def read_key_file(path: Path) -> str | None:
    """The key stored in ``path``, or None when the file is missing or empty."""
    try:
        key = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return key or None


def choose_secret_key(environ, key_file: Path) -> tuple[str, str]:
    """(key, where it came from: "environment", "file" or "default")."""
    for name in ("DJANGO_SECRET_KEY", "SECRET_KEY"):
        if environ.get(name, "").strip():
            return environ[name].strip(), "environment"
    key = read_key_file(key_file)
    if key:
        return key, "file"
    return DEFAULT_SECRET_KEY, "default"


def ensure_key_file(path: Path) -> bool:
    """Write a new random key to ``path`` (mode 0600) unless it holds one already; True when written.
    Created exclusively, so two first starts at once keep one key."""
    if read_key_file(path):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # an empty file left over, or another process won the race
        if read_key_file(path):
            return False
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_urlsafe(50) + "\n")
    return True
