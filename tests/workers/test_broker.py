"""The embedded broker: everything under $ZENITH_VAR_DIR/broker, and message files that appear whole."""

import contextlib
import os
from pathlib import Path
from queue import Empty

import pytest
from celery import current_app
from django.conf import settings
from kombu import Connection

from workers import broker

embedded_only = pytest.mark.skipif(
    not settings.CELERY_BROKER_URL.startswith("filesystem"), reason="only for the embedded filesystem broker"
)


@embedded_only
def test_filesystem_broker_folders_are_all_under_the_broker_dir():
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    broker_dir = Path(settings.BROKER_DIR).resolve()
    # kombu's default control_folder is "control" in the working directory: exchange bindings would
    # then be shared by every ZENITH_VAR_DIR run from the same place (and land in the source tree).
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        folder = Path(options[key]).resolve()
        assert folder.is_relative_to(broker_dir), (key, folder)
        assert folder.is_dir(), (key, folder)
    assert options["polling_interval"] <= 0.05


@embedded_only
def test_celery_connections_use_the_atomic_filesystem_transport():
    for connection in (current_app.connection_for_write(), current_app.connection_for_read()):
        with connection:
            assert isinstance(connection.transport, broker.Transport)


def test_celery_reads_the_django_settings():
    conf = current_app.conf
    assert conf.broker_url == settings.CELERY_BROKER_URL
    assert conf.task_default_queue == "conductor"
    assert conf.task_acks_late is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options == settings.CELERY_BROKER_TRANSPORT_OPTIONS


@pytest.fixture
def channel(tmp_path):
    folder = str(tmp_path)
    options = {"data_folder_in": folder, "data_folder_out": folder, "control_folder": folder}
    with Connection("filesystem://", transport="workers.broker:Transport", transport_options=options) as conn:
        yield conn.default_channel


def test_a_message_becomes_visible_only_once_fully_written(channel, monkeypatch):
    """kombu's own _put creates the final file empty, then writes it: a consumer polling in between
    read an empty message and the worker died on JSONDecodeError (kombu issue #1551)."""
    seen_before_rename = []
    real_replace = os.replace

    def checking_replace(src, dst):
        seen_before_rename.append((channel._size("q"), Path(src).read_bytes()))
        real_replace(src, dst)

    monkeypatch.setattr(broker.os, "replace", checking_replace)
    channel._put("q", {"body": "hello"})

    ((visible, written),) = seen_before_rename
    assert visible == 0  # nothing a consumer of "q" could take yet
    assert b"hello" in written  # and the file renamed into place is complete
    assert channel._size("q") == 1
    assert channel._get("q") == {"body": "hello"}
    assert channel._size("q") == 0


def test_partial_files_are_ignored_by_consumers(channel, tmp_path):
    (tmp_path / ".123_abc.q.msg.part").write_bytes(b"")  # a writer that has not renamed yet
    assert channel._size("q") == 0
    with pytest.raises(Empty):  # not a JSONDecodeError
        channel._get("q")
    channel._put("q", {"n": 1})
    channel._put("q", {"n": 2})
    # Order is by millisecond, then by random uuid (as in kombu): no FIFO within one millisecond.
    assert sorted([channel._get("q")["n"], channel._get("q")["n"]]) == [1, 2]
    assert channel._size("q") == 0


def test_one_listing_serves_a_polling_round_of_many_queues(channel, monkeypatch):
    """A worker of many queues (a multi-host agent) lists the directory once per polling round, not once
    per queue; what it lists is still delivered in order, each message once."""
    import time

    for n in range(3):
        channel._put("compute.sim-2", {"n": n})
    channel._put("compute.sim-7", {"n": "other"})
    time.sleep(broker.LISTING_TTL * 2)
    listings = []
    real_listdir = os.listdir
    monkeypatch.setattr(broker.os, "listdir", lambda path: listings.append(path) or real_listdir(path))
    got = []
    for host in range(100):
        with contextlib.suppress(Empty):
            got.append(channel._get(f"compute.sim-{host}")["n"])
    assert len(listings) == 1
    assert len(got) == 2 and got[1] == "other"
    rest = [channel._get("compute.sim-2")["n"], channel._get("compute.sim-2")["n"]]
    assert sorted([got[0], *rest]) == [0, 1, 2]  # no FIFO within one millisecond (as in kombu)
    with pytest.raises(Empty):
        channel._get("compute.sim-2")
    # A message put after the listing is seen once the listing is older than a polling round.
    channel._put("compute.sim-9", {"n": "late"})
    time.sleep(broker.LISTING_TTL * 2)
    assert channel._get("compute.sim-9") == {"n": "late"}
