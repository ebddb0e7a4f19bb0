"""Progress reports of a host task to the conductor, the image fetch every task shares, and the
signed upload (a volume's or an instance disk's bytes PUT to the portal)."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import time
from urllib.parse import urlparse

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


def put_stream(url: str, chunks, length: int, timeout: float = 60.0) -> tuple[int, str]:
    """PUT ``chunks`` to ``url`` as a body of ``length`` bytes, streamed (never held in memory);
    (bytes sent, sha256 hex). The body has a Content-Length, not chunked transfer encoding: every
    WSGI server can read it (Django's runserver and test server cannot read a chunked body). Chunks
    adding up to more or fewer bytes than ``length`` are an OSError, the request cut short, so the
    receiver sees a body shorter than announced and refuses it. Volume uploads and instance
    snapshots both send their bytes through it."""
    parts = urlparse(url)
    conn_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_class(parts.hostname, parts.port, timeout=timeout)
    digest = hashlib.sha256()
    sent = 0

    def body():
        nonlocal sent
        for chunk in chunks:
            if sent + len(chunk) > length:
                raise OSError(f"the stream has more than the {length} bytes announced for its upload")
            digest.update(chunk)
            sent += len(chunk)
            yield chunk
        if sent != length:
            raise OSError(f"the stream ended after {sent} of the {length} bytes announced")

    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(int(length))}
        conn.request("PUT", path, body=body(), headers=headers)
        response = conn.getresponse()
        text = response.read(2000).decode("utf-8", "replace")
        if response.status >= 300:
            raise OSError(f"upload refused by {parts.hostname}: HTTP {response.status} {text.strip()[:200]}")
    finally:
        conn.close()
    return sent, digest.hexdigest()
