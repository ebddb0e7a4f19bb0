"""The host agent's image cache: real HTTP downloads from the portal (pytest-django's live server)
with signed URLs, verification, reuse without HTTP, expiry, and concurrent fetches of one image."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core import signing
from django.core.files.storage import default_storage

from compute import services
from compute.models import Image
from workers.agent.images import ImageFetchError, cache_dir_for, fetch_image

DATA = bytes(range(256)) * 12289  # ~3 MiB: several chunks


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def portal(cloud, live_server, settings):
    """The portal's live server as ZENITH_PORTAL_URL, and an active image uploaded to it."""
    settings.ZENITH_PORTAL_URL = live_server.url
    member = cloud.ctx(cloud.member)
    image = services.create_image(member, name="cirros", disk_format="qcow2")
    services.upload_image_data(member, image, [DATA[i : i + 65536] for i in range(0, len(DATA), 65536)])
    image.refresh_from_db()
    return image


def cache_files(cache) -> list[str]:
    return sorted(os.listdir(cache)) if os.path.isdir(cache) else []


def test_cache_dir_for():
    assert cache_dir_for("/var/lib/zenith", "host-a") == os.path.join(
        "/var/lib/zenith", "agent", "host-a", "images"
    )


def test_fetch_downloads_verifies_and_caches(portal, tmp_path):
    cache = cache_dir_for(str(tmp_path), "host-a")
    seen = []
    path = fetch_image(
        services.image_fetch_url(portal),
        portal.checksum,
        portal.size,
        cache,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert path == os.path.join(cache, portal.checksum)
    with open(path, "rb") as fh:
        assert fh.read() == DATA
    assert len(seen) > 1 and seen[-1] == (len(DATA), len(DATA))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert cache_files(cache) == [portal.checksum]  # no temporary file left

    # Reused without HTTP: the portal no longer has the bytes, and the URL goes nowhere.
    default_storage.delete(portal.file.name)
    assert fetch_image("http://127.0.0.1:9/unreachable", portal.checksum, portal.size, cache) == path
    assert fetch_image(services.image_fetch_url(portal), portal.checksum, portal.size, cache) == path


def test_truncated_cache_entry_is_fetched_again(portal, tmp_path):
    cache = str(tmp_path / "images")
    os.makedirs(cache)
    with open(os.path.join(cache, portal.checksum), "wb") as fh:
        fh.write(DATA[:100])
    path = fetch_image(services.image_fetch_url(portal), portal.checksum, portal.size, cache)
    assert os.path.getsize(path) == len(DATA)


def test_bad_checksum_leaves_no_file(portal, tmp_path):
    cache = str(tmp_path / "images")
    wrong = sha256(b"something else")
    with pytest.raises(ImageFetchError, match="sha256 of the downloaded bytes"):
        fetch_image(services.image_fetch_url(portal), wrong, portal.size, cache)
    assert cache_files(cache) == []
    with pytest.raises(ImageFetchError, match="more than the 5 bytes"):
        fetch_image(services.image_fetch_url(portal), portal.checksum, 5, cache)
    with pytest.raises(ImageFetchError, match=f"received {len(DATA)} bytes, expected {len(DATA) + 1}"):
        fetch_image(services.image_fetch_url(portal), portal.checksum, len(DATA) + 1, cache)
    assert cache_files(cache) == []
    with pytest.raises(ImageFetchError, match="not a sha256"):
        fetch_image(services.image_fetch_url(portal), "../../etc/passwd", portal.size, cache)


def test_expired_tampered_and_deleted_urls_are_refused(cloud, portal, tmp_path, monkeypatch, settings):
    cache = str(tmp_path / "images")
    now = time.time()

    class Later:
        @staticmethod
        def time():
            return now - settings.ZENITH_IMAGE_URL_TTL - 10

    monkeypatch.setattr(signing, "time", Later)
    expired = services.image_fetch_url(portal)
    monkeypatch.undo()
    with pytest.raises(ImageFetchError, match=r"\(403\): This image URL has expired") as info:
        fetch_image(expired, portal.checksum, portal.size, cache)
    assert "image-data" not in str(info.value)  # the token, a credential, stays out of messages
    url = services.image_fetch_url(portal)
    with pytest.raises(ImageFetchError, match=r"\(403\)"):
        fetch_image(url[:-4] + "AAAA", portal.checksum, portal.size, cache)
    services.delete_image(cloud.ctx(cloud.member), Image.objects.get(pk=portal.pk))
    with pytest.raises(ImageFetchError, match=r"\(404\)"):
        fetch_image(url, portal.checksum, portal.size, cache)
    assert cache_files(cache) == []


def test_unreachable_portal_and_unusable_cache(tmp_path):
    checksum = sha256(b"x")
    with pytest.raises(ImageFetchError, match="cannot download"):
        fetch_image("http://127.0.0.1:9/x", checksum, 1, str(tmp_path / "c"), timeout=2)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ImageFetchError, match="unusable"):
        fetch_image("http://127.0.0.1:9/x", checksum, 1, str(blocker / "images"))


class _SlowImage(http.server.BaseHTTPRequestHandler):
    hits = 0
    body = DATA

    def do_GET(self):
        type(self).hits += 1
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        for i in range(0, len(self.body), 262144):
            self.wfile.write(self.body[i : i + 262144])
            time.sleep(0.01)

    def log_message(self, *args):
        pass


def test_concurrent_fetches_download_once(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowImage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/image"
        cache = str(tmp_path / "images")
        with ThreadPoolExecutor(8) as pool:
            paths = list(pool.map(lambda _: fetch_image(url, sha256(DATA), len(DATA), cache), range(8)))
    finally:
        server.shutdown()
        server.server_close()
    assert set(paths) == {os.path.join(cache, sha256(DATA))}
    assert _SlowImage.hits == 1
    with open(paths[0], "rb") as fh:
        assert fh.read() == DATA
    assert cache_files(cache) == [sha256(DATA)]
