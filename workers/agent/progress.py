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


def put_stream(url: str, chunks, timeout: float = 60.0, length: int | None = None) -> tuple[int, str]:
    """PUT ``chunks`` to ``url``; (bytes sent, sha256 hex). With ``length`` the request carries
    ``Content-Length`` (the portal then refuses a body that ends early or runs long); without it,
    chunked transfer encoding."""
    parts = urlparse(url)
    conn_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_class(parts.hostname, parts.port, timeout=timeout)
    digest = hashlib.sha256()
    sent = 0

    def body():
        nonlocal sent
        for chunk in chunks:
            digest.update(chunk)
            sent += len(chunk)
            yield chunk

    headers = {"Content-Type": "application/octet-stream"}
    if length is not None:
        headers["Content-Length"] = str(int(length))
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request("PUT", path, body=body(), headers=headers, encode_chunked=length is None)
        response = conn.getresponse()
        text = response.read(2000).decode("utf-8", "replace")
        if response.status >= 300:
            raise OSError(f"upload refused by {parts.hostname}: HTTP {response.status} {text.strip()[:200]}")
    finally:
        conn.close()
    return sent, digest.hexdigest()
