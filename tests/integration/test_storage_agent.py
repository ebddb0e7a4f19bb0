"""The storage role through the broker: a real agent process (``manage.py agent``, both roles by
default) consumes ``storage.<host>`` and ``compute.<host>`` and answers the typed volume messages,
on libvirt's test driver (a simulated host). The conductor side (states, callbacks) is the storage
app's; here the tasks are sent by name and their answers read back, as the conductor would."""

from __future__ import annotations

import time
import uuid

import pytest
from celery import current_app

from workers import processes, tasknames
from workers.messages import VolumeAttachment, VolumeRequest, VolumeResult, VolumeSource

from .conftest import PLANE_KEY, Plane, clear_broker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

HOST = "store-int"
GiB = 1024**3


@pytest.fixture(scope="module")
def storage_agent(request, django_db_setup, tmp_path_factory):
    clear_broker()
    workers = Plane(tmp_path_factory.mktemp("worker-logs"))
    request.node.stash[PLANE_KEY] = workers
    try:
        agent = workers.launch_agent(HOST, processes.simulated_host_uri())
        workers.start(agent)
        yield workers
    finally:
        workers.stop()


def call(name: str, queue: str, timeout: float = 20, **kwargs) -> dict:
    result = current_app.send_task(name, kwargs=kwargs, queue=queue)
    try:
        return result.get(timeout=timeout)
    finally:
        result.forget()


def storage_call(name: str, request: VolumeRequest) -> VolumeResult:
    return VolumeResult.from_dict(call(name, f"storage.{HOST}", request=request.as_dict()))


def test_volume_lifecycle_through_a_real_agent(storage_agent):
    vol, snap, clone = (f"{kind}-{uuid.uuid4()}" for kind in ("volume", "snapshot", "volume"))
    started = time.monotonic()
    created = storage_call(tasknames.AGENT_CREATE_VOLUME, VolumeRequest(backend="local", name=vol, size_gb=1))
    create_seconds = time.monotonic() - started
    assert created.ok and not created.existed and created.size_bytes == GiB, created
    assert created.connection.type == "file" and created.connection.format == "qcow2"
    redelivered = storage_call(
        tasknames.AGENT_CREATE_VOLUME, VolumeRequest(backend="local", name=vol, size_gb=1)
    )
    assert redelivered.ok and redelivered.existed
    snapshot = storage_call(
        tasknames.AGENT_SNAPSHOT_VOLUME,
        VolumeRequest(backend="local", name=snap, source=VolumeSource(kind="volume", name=vol)),
    )
    assert snapshot.ok, snapshot
    from_snapshot = storage_call(
        tasknames.AGENT_CREATE_VOLUME,
        VolumeRequest(
            backend="local", name=clone, size_gb=2, source=VolumeSource(kind="snapshot", name=snap)
        ),
    )
    assert from_snapshot.ok and from_snapshot.size_bytes == 2 * GiB, from_snapshot
    extended = storage_call(
        tasknames.AGENT_EXTEND_VOLUME, VolumeRequest(backend="local", name=vol, size_gb=3)
    )
    assert extended.ok and extended.size_bytes == 3 * GiB, extended

    # The compute side of the same agent: no such domain is an answer, not a crash.
    attachment = VolumeAttachment(domain="zenith-missing", connection=created.connection)
    answer = call(tasknames.AGENT_ATTACH_VOLUME, f"compute.{HOST}", attachment=attachment.as_dict())
    assert not answer["ok"] and "no domain zenith-missing" in answer["error"]

    for name in (vol, snap, clone):
        deleted = storage_call(tasknames.AGENT_DELETE_VOLUME, VolumeRequest(backend="local", name=name))
        assert deleted.ok and deleted.existed
    again = storage_call(tasknames.AGENT_DELETE_VOLUME, VolumeRequest(backend="local", name=vol))
    assert again.ok and not again.existed
    print(f"blank create through the broker: {create_seconds * 1000:.0f} ms")
