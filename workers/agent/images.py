"""The host's image cache: images fetched from the portal over HTTP (signed, expiring URLs), verified
and kept under ``<cache_dir>/<sha256>``, so an image is downloaded once per host.

Plain Python (urllib), no Django: the portal sends the URL, checksum and size in the task's arguments.
Safe for concurrent fetches: threads of one process wait on a per-checksum lock; processes each write
their own temporary file and rename it into place atomically, so a reader never sees a partial image.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

CHUNK = 1 << 20
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


class ImageFetchError(Exception):
    """An image could not be fetched into the cache (unreachable portal, refused URL, bad bytes)."""


def cache_dir_for(var_dir: str, host: str) -> str:
    """The image cache of ``host``: ``<var_dir>/agent/<host>/images``."""
    return os.path.join(var_dir, "agent", host, "images")


def _lock_for(checksum: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(checksum, threading.Lock())


def _where(url: str) -> str:
    """The URL without its path: the signed token is a credential and stays out of messages."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else "the portal"


def _http_error_message(exc: urllib.error.HTTPError) -> str:
    with contextlib.suppress(Exception):
        body = json.loads(exc.read(65536) or b"{}")
        return str(body["error"]["message"])
    return exc.reason or "error"


def fetch_image(
    url: str,
    checksum: str,
    size: int | None,
    cache_dir: str,
    progress: Callable[[int, int], None] | None = None,
    timeout: float = 60,
) -> str:
    """The path of the image with sha256 ``checksum`` in ``cache_dir``, downloading it from ``url`` first
    unless it is cached already (a cached file is trusted when its size matches).

    ``progress(bytes_done, total)`` is called as chunks arrive. Raises ImageFetchError when the portal
    cannot be reached or refuses, or when the bytes do not match ``size`` and ``checksum``; then no
    file is left behind.
    """
    checksum = (checksum or "").lower()
    if not _SHA256_RE.match(checksum):
        raise ImageFetchError(f"not a sha256 checksum: {checksum!r}")
    try:
        os.makedirs(cache_dir, exist_ok=True)
    except OSError as exc:
        raise ImageFetchError(f"image cache {cache_dir} is unusable: {exc}") from exc
    path = os.path.join(cache_dir, checksum)
    with _lock_for(checksum):
        try:
            cached = os.stat(path).st_size
        except FileNotFoundError:
            cached = None
        if cached is not None and (size is None or cached == size):
            if progress is not None:
                progress(cached, cached)
            return path
        if cached is not None:  # a truncated or foreign file: fetch it again
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        _download(url, checksum, size, cache_dir, path, progress, timeout)
        return path


def _download(url, checksum, size, cache_dir, path, progress, timeout) -> None:
    try:
        fd, partial = tempfile.mkstemp(dir=cache_dir, prefix=f".{checksum}.", suffix=".part")
    except OSError as exc:
        raise ImageFetchError(f"image cache {cache_dir} is unusable: {exc}") from exc
    try:
        with os.fdopen(fd, "wb") as out:
            digest, done = _copy(url, out, size, progress, timeout)
            out.flush()
            os.fsync(out.fileno())
        if size is not None and done != size:
            raise ImageFetchError(f"image {checksum[:12]}: received {done} bytes, expected {size}")
        if digest != checksum:
            raise ImageFetchError(
                f"image {checksum[:12]}: sha256 of the downloaded bytes is {digest}, expected {checksum}"
            )
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise


def _copy(url, out, size, progress, timeout) -> tuple[str, int]:
    digest = hashlib.sha256()
    done = 0
    total = size or 0
    request = urllib.request.Request(url, headers={"Accept": "application/octet-stream, application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if not total:
                total = int(response.headers.get("Content-Length") or 0)
            while chunk := response.read(CHUNK):
                done += len(chunk)
                if size is not None and done > size:
                    raise ImageFetchError(f"the portal sent more than the {size} bytes expected")
                digest.update(chunk)
                out.write(chunk)
                if progress is not None:
                    progress(done, total)
    except urllib.error.HTTPError as exc:
        raise ImageFetchError(
            f"{_where(url)} refused the image download ({exc.code}): {_http_error_message(exc)}"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ImageFetchError(f"cannot download the image from {_where(url)}: {reason}") from None
    return digest.hexdigest(), done
