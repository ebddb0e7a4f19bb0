"""The storage role's agent tasks and the compute role's volume tasks, run in this process against
libvirt's test driver (a simulated host): the typed messages in, the typed answers out."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import uuid

import libvirt
import pytest

from workers import tasknames
from workers.agent import heartbeat, runtime, storage, tasks
from workers.agent.drivers.libvirt import xml as dx
from workers.messages import (
    AttachmentResult,
    StorageReport,
    VolumeAttachment,
    VolumeConnection,
    VolumeRequest,
    VolumeResult,
    VolumeSource,
)

GiB = 1024**3
IMAGE = b"\0" * (3 * 1024 * 1024 + 17)


@pytest.fixture
def agent(monkeypatch, tmp_path):
    monkeypatch.setenv(runtime.HOST_ENV, "store-host")
    monkeypatch.setenv(runtime.URI_ENV, "test:///default")
    monkeypatch.setenv(runtime.VAR_ENV, str(tmp_path))
    monkeypatch.delenv(runtime.BACKENDS_ENV, raising=False)
    monkeypatch.delenv(runtime.ROLES_ENV, raising=False)
    monkeypatch.setattr(runtime, "_driver", None)
    yield runtime.driver()
    runtime.driver().close()
    monkeypatch.setattr(runtime, "_driver", None)


def name() -> str:
    return f"volume-{uuid.uuid4()}"


def create(vol: str, size_gb: int = 1, **source) -> VolumeResult:
    request = VolumeRequest(backend="local", name=vol, size_gb=size_gb, source=VolumeSource(**source))
    return VolumeResult.from_dict(storage.create_volume(request.as_dict()))


def test_default_backend_is_a_dir_pool_of_its_own_beside_the_instance_pool(agent, tmp_path):
    [local] = runtime.storage_backends()
    assert (local.name, local.type, local.shared) == ("local", "dir", False)
    assert local.path == str(tmp_path / "agent" / "store-host" / "volumes") != runtime.pool_path()
    assert local.pool_name.startswith("zenith-store-host-") and local.pool_name != runtime.pool_name()
    assert runtime.roles() == ["compute", "storage"]


def test_backends_from_the_environment(agent, monkeypatch):
    monkeypatch.setenv(
        runtime.BACKENDS_ENV,
        json.dumps(
            [
                {"name": "local", "type": "dir"},
                {"name": "lvm", "type": "logical", "source": "vg0"},
                {
                    "name": "ceph",
                    "type": "rbd",
                    "source": "volumes",
                    "hosts": ["mon1:6789"],
                    "auth_user": "z",
                },
            ]
        ),
    )
    local, lvm, ceph = runtime.storage_backends()
    assert (lvm.type, lvm.source, lvm.shared, lvm.volume_format) == ("logical", "vg0", False, "raw")
    assert (ceph.shared, ceph.hosts, local.volume_format) == (True, ("mon1:6789",), "qcow2")
    for bad in ("[", '{"name": "x"}', '[{"name": "x", "type": "nfs"}]', '[{"name": "l", "type": "logical"}]'):
        monkeypatch.setenv(runtime.BACKENDS_ENV, bad)
        with pytest.raises(runtime.BackendConfigError):
            runtime.storage_backends()


def test_pool_and_disk_xml_of_every_backend_type():
    logical = dx.pool_xml("p", pool_type="logical", source="vg0")
    assert '<source><name>vg0</name><format type="lvm2" /></source>' in logical
    assert "<target><path>/dev/vg0</path></target>" in logical
    rbd = dx.pool_xml(
        "p", pool_type="rbd", source="vols", hosts=["m1:6789", "m2"], auth_user="z", secret_uuid="s"
    )
    assert '<host name="m1" port="6789" />' in rbd and '<host name="m2" />' in rbd
    assert '<auth type="ceph" username="z"><secret uuid="s" /></auth>' in rbd
    with pytest.raises(ValueError):
        dx.pool_xml("p", "/x", pool_type="nfs")
    from workers.agent.drivers.base import DiskSpec

    block = dx.disk_xml(DiskSpec(path="/dev/vg0/v", format="raw", type="block"), "vdb")
    assert '<source dev="/dev/vg0/v" />' in block and 'type="block"' in block
    net = dx.disk_xml(
        DiskSpec(
            path="vols/v",
            format="raw",
            type="network",
            protocol="rbd",
            hosts=("m1:6789",),
            auth_user="z",
            secret_uuid="s",
        ),
        "vdc",
    )
    assert '<source protocol="rbd" name="vols/v"><host name="m1" port="6789" /></source>' in net
    assert '<auth username="z"><secret type="ceph" uuid="s" /></auth>' in net
    assert dx.disks_of(f"<domain><devices>{net}</devices></domain>")["vdc"][0] == "vols/v"
    assert "<format" not in dx.volume_xml("v", GiB, None, vol_type="block")


def test_blank_create_is_idempotent_and_delete_too(agent):
    vol = name()
    first = create(vol, 2)
    assert first.ok and not first.existed and first.size_bytes == 2 * GiB
    assert first.connection == VolumeConnection(type="file", path=first.connection.path, format="qcow2")
    assert first.connection.path.endswith(f"/volumes/{vol}")
    again = create(vol, 2)  # redelivered
    assert again.ok and again.existed and again.connection == first.connection
    smaller_than_asked = create(vol, 3)
    assert not smaller_than_asked.ok and "already exists" in smaller_than_asked.error
    request = VolumeRequest(backend="local", name=vol).as_dict()
    assert VolumeResult.from_dict(storage.delete_volume(request)) == VolumeResult(
        ok=True, existed=True, message=f"{vol} deleted"
    )
    gone = VolumeResult.from_dict(storage.delete_volume(request))
    assert gone.ok and not gone.existed
    [local] = runtime.storage_backends()
    assert vol not in agent.backend_pool(local).listVolumes()


def test_bad_requests_are_answers_not_exceptions(agent):
    assert "unknown keys" in storage.create_volume({"backend": "local", "name": "v", "colour": 1})["error"]
    unknown = storage.create_volume(VolumeRequest(backend="ceph", name="v", size_gb=1).as_dict())
    assert not unknown["ok"] and "no storage backend 'ceph'" in unknown["error"]
    missing = create(name(), 1, kind="snapshot", name="snapshot-nope")
    assert not missing.ok and "VolumeNotFound" in missing.error
    assert not storage.extend_volume(VolumeRequest(backend="local", name="nope", size_gb=2).as_dict())["ok"]


def test_snapshot_clone_from_snapshot_and_extend(agent):
    vol, snap, clone = name(), f"snapshot-{uuid.uuid4()}", name()
    assert create(vol, 1).ok
    snapshot = storage.snapshot_volume(
        VolumeRequest(backend="local", name=snap, source=VolumeSource(kind="volume", name=vol)).as_dict()
    )
    assert snapshot["ok"] and snapshot["size_bytes"] == GiB
    from_snapshot = create(clone, 3, kind="snapshot", name=snap)
    assert from_snapshot.ok and from_snapshot.size_bytes == 3 * GiB
    cloned = create(name(), 1, kind="volume", name=vol)
    assert cloned.ok and cloned.size_bytes == GiB and cloned.connection.path != from_snapshot.connection.path
    # The test driver has no volume resize: the equivalent it supports (no bytes to keep).
    extended = storage.extend_volume(VolumeRequest(backend="local", name=vol, size_gb=4).as_dict())
    assert extended["ok"] and extended["size_bytes"] == 4 * GiB
    shrink = storage.extend_volume(VolumeRequest(backend="local", name=vol, size_gb=2).as_dict())
    assert not shrink["ok"] and "cannot shrink" in shrink["error"]
    [local] = runtime.storage_backends()
    assert {vol, snap, clone} <= set(agent.backend_pool(local).listVolumes())


@pytest.fixture
def image_server():
    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(IMAGE)))
            self.end_headers()
            self.wfile.write(IMAGE)

        def do_PUT(self):
            received.append(self.rfile.read(int(self.headers.get("Content-Length", 0) or 0)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", received
    server.shutdown()


def test_from_image_on_a_simulated_host_fetches_and_says_no_bytes_were_copied(
    agent, image_server, monkeypatch
):
    base, _ = image_server
    progress = []
    monkeypatch.setattr(storage.Progress, "__call__", lambda self, p, m="": progress.append((p, m)))
    image = {
        "url": f"{base}/image",
        "checksum": hashlib.sha256(IMAGE).hexdigest(),
        "size": len(IMAGE),
        "disk_format": "raw",
    }
    vol = name()
    request = VolumeRequest(
        backend="local",
        name=vol,
        size_gb=1,
        source=VolumeSource(kind="image", image=image),
        operation_id="op-1",
    )
    result = VolumeResult.from_dict(storage.create_volume(request.as_dict()))
    assert result.ok and result.size_bytes == GiB and result.connection.format == "raw"
    assert "simulated host" in result.message and "none were copied" in result.message
    assert any("fetching image" in m for _p, m in progress)
    bad = dict(image, checksum="0" * 64)
    failed = create(name(), 1, kind="image", image=bad)
    assert not failed.ok and "sha256 of the downloaded bytes" in failed.error


def test_upload_is_not_supported_on_the_test_driver(agent, image_server):
    base, received = image_server
    vol = name()
    assert create(vol, 1).ok
    answer = storage.upload_volume(
        VolumeRequest(backend="local", name=vol, upload_url=f"{base}/up").as_dict()
    )
    assert not answer["ok"] and "virStorageVolDownload" in answer["error"] and received == []


def test_put_stream_sends_every_chunk_with_a_content_length(image_server):
    base, received = image_server
    sent, checksum = storage.put_stream(f"{base}/up?t=1", iter([b"abc", b"def"]), 6)
    assert (sent, checksum) == (6, hashlib.sha256(b"abcdef").hexdigest())
    assert received == [b"abcdef"]  # the handler reads exactly Content-Length bytes


@pytest.mark.parametrize("length, error", [(5, "more than the 5 bytes"), (7, "after 6 of the 7 bytes")])
def test_put_stream_refuses_chunks_that_are_not_the_announced_length(image_server, length, error):
    base, _received = image_server
    with pytest.raises(OSError, match=error):
        storage.put_stream(f"{base}/up", iter([b"abc", b"def"]), length)


def test_heartbeat_storage_section(agent, monkeypatch):
    sent = []
    monkeypatch.setattr(heartbeat.current_app, "send_task", lambda n, kwargs=None, **o: sent.append(kwargs))
    heartbeat.report("store-host", "test:///default")
    report = StorageReport.from_dict(sent[0]["info"]["storage"])
    [local] = report.backends
    assert (local.name, local.type, local.reaches, local.simulated) == ("local", "dir", ("store-host",), True)
    assert local.capacity_bytes > 0 and local.pool == runtime.storage_backends()[0].pool_name
    monkeypatch.setenv(runtime.ROLES_ENV, "compute")
    heartbeat.report("store-host", "test:///default")
    assert "storage" not in sent[1]["info"]


def domain(drv, tmp_path) -> str:
    from workers.agent.drivers.base import DiskSpec, DomainSpec

    iid = str(uuid.uuid4())
    drv.spawn(
        DomainSpec(name=f"zenith-{iid}", uuid=iid, vcpus=1, memory_mb=64, disks=[DiskSpec(path="/r.qcow2")])
    )
    return f"zenith-{iid}"


def test_attach_detach_resize_on_a_simulated_host(agent, tmp_path):
    vol = create(name(), 1)
    dom = domain(agent, tmp_path)
    att = VolumeAttachment(domain=dom, connection=vol.connection)
    attached = AttachmentResult.from_dict(tasks.attach_volume(att.as_dict()))
    assert attached.ok and attached.target_dev == "vdb" and attached.live is False
    assert "simulated host" in attached.message
    persistent = agent.conn.lookupByName(dom).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert vol.connection.path in persistent
    assert AttachmentResult.from_dict(tasks.attach_volume(att.as_dict())).target_dev == "vdb"  # redelivered
    resized = tasks.resize_volume(
        VolumeAttachment(domain=dom, connection=vol.connection, size_bytes=2 * GiB).as_dict()
    )
    assert resized["ok"] and resized["live"] is False and "no running guest" in resized["message"]
    detached = AttachmentResult.from_dict(tasks.detach_volume(att.as_dict()))
    assert detached.ok and detached.target_dev == "vdb"
    assert vol.connection.path not in agent.conn.lookupByName(dom).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert tasks.detach_volume(att.as_dict()) == AttachmentResult(ok=True, message="not attached").as_dict()
    missing = tasks.attach_volume(VolumeAttachment(domain="zenith-none", connection=vol.connection).as_dict())
    assert not missing["ok"] and "no domain zenith-none" in missing["error"]
    assert not tasks.resize_volume(att.as_dict())["ok"]  # no size


def test_task_names_match_the_contract():
    assert storage.create_volume.name == tasknames.AGENT_CREATE_VOLUME
    assert storage.delete_volume.name == tasknames.AGENT_DELETE_VOLUME
    assert storage.extend_volume.name == tasknames.AGENT_EXTEND_VOLUME
    assert storage.snapshot_volume.name == tasknames.AGENT_SNAPSHOT_VOLUME
    assert storage.upload_volume.name == tasknames.AGENT_UPLOAD_VOLUME
    assert tasks.attach_volume.name == tasknames.AGENT_ATTACH_VOLUME
    assert tasks.detach_volume.name == tasknames.AGENT_DETACH_VOLUME
    assert tasks.resize_volume.name == tasknames.AGENT_RESIZE_VOLUME


def test_a_copy_a_killed_agent_left_unfinished_is_made_again(agent):
    """Redelivery after SIGKILL mid-copy: the volume exists but its building marker too, so the
    create starts over instead of answering a half-copied volume as done."""
    vol, copy = name(), name()
    assert create(vol, 1).ok
    [local] = runtime.storage_backends()
    assert create(copy, 1, kind="volume", name=vol).ok
    marker = storage._building_marker(local, copy)
    assert not marker.exists()  # removed once the copy finished
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()  # as a killed agent leaves it
    again = create(copy, 1, kind="volume", name=vol)
    assert again.ok and not again.existed and not marker.exists()
    assert create(copy, 1, kind="volume", name=vol).existed
