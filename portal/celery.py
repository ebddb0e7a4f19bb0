"""The Celery app, configured from Django settings (``CELERY_*``)."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("zenith")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers", "workers.agent", "identity", "compute", "storage", "networking"])


def _close_old_connections(sender=None, **_kwargs) -> None:
    """Before and after each task, what Django does around each request: close the thread's database
    connections that are past CONN_MAX_AGE (SQLite: 0, so every task, as before) or unusable; keep the
    others (Celery's fixup, with CELERY_DB_REUSE_MAX, no longer closes them every time)."""
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


task_prerun.connect(_close_old_connections, weak=False, dispatch_uid="zenith-close-old-connections-pre")
task_postrun.connect(_close_old_connections, weak=False, dispatch_uid="zenith-close-old-connections-post")
