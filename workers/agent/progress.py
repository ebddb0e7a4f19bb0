"""Progress reports of a host task to the conductor, and the image fetch every task shares."""

from __future__ import annotations

import contextlib
import time

from celery import current_app

from .. import tasknames
from . import images, runtime
from .runtime import host_name

CONDUCTOR = "conductor"


class Progress:
    """Reports an operation's progress to the conductor: nothing for work done within ``every``
    seconds (a spawn on the test driver takes ~20 ms: its steps are not worth a message each), then
    at most one message every ``every`` seconds, never going backwards."""

    def __init__(self, operation_id: str, every: float = 0.2):
        self.operation_id = operation_id
        self.every = every
        self._last = time.monotonic()  # the first message waits ``every`` seconds too
        self._percent = -1

    def __call__(self, percent: int, message: str = "") -> None:
        now = time.monotonic()
        if percent <= self._percent or now - self._last < self.every:
            return
        self._last, self._percent = now, percent
        with contextlib.suppress(Exception):  # progress is best effort; the result is what counts
            current_app.send_task(
                tasknames.OPERATION_PROGRESS,
                kwargs={"operation_id": self.operation_id, "percent": percent, "message": message},
                queue=CONDUCTOR,
            )


def fetch(spec: dict, progress=None) -> str:
    return images.fetch_image(
        spec["url"],
        spec["checksum"],
        spec["size"],
        images.cache_dir_for(str(runtime.var_dir()), host_name()),
        progress=progress,
    )
