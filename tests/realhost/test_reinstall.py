"""A reinstall in another folder launches real guests (issue 9).

The machine's libvirtd outlives a checkout: an earlier clone in another folder, since removed, left
its persistent pool ``zenith`` active at a directory that no longer exists (what Zenith before issue 9
named every agent's pool). An agent of this clone must launch a real guest all the same, with its
disk in this agent's own pool directory; before the fix it reused that pool and every spawn failed
with qemu-img's "No such file or directory".
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import libvirt
import pytest
from django.conf import settings
from django.core.management import call_command

from compute import services
from compute.models import Instance
from tests.conftest import token_client
from tests.integration.conftest import PLANE_KEY, Plane, clear_broker
from tests.integration.test_async_plane import wait_for
from tests.realhost.conftest import URI, var_dir
from tests.realhost.test_instances_real import API, BOOT, REAL, wait_marker, wait_status
from workers.agent.drivers.libvirt import LibvirtDriver
from workers.agent.drivers.libvirt import xml as dx
from workers.models import Host

pytestmark = [pytest.mark.realhost, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

OLD_NAME = "zenith"  # the one pool name of every agent before issue 9


def _pool_path(pool: libvirt.virStoragePool) -> str:
    return dx.pool_path_from_xml(pool.XMLDesc(0))


def _drop(pool: libvirt.virStoragePool) -> None:
    with contextlib.suppress(libvirt.libvirtError):
        if pool.isActive():
            pool.destroy()
    with contextlib.suppress(libvirt.libvirtError):
        pool.undefine()


@pytest.fixture(scope="module")
def earlier_clone(realhost, tmp_path_factory):
    """The pool an earlier clone in another folder left: defined, active, autostarted, at the pool
    directory of that clone, and the clone's folder deleted. Whatever ``zenith`` pool was there
    before (another checkout's) is put back at the end."""
    conn = libvirt.open(URI)
    saved = None
    with contextlib.suppress(libvirt.libvirtError):
        existing = conn.storagePoolLookupByName(OLD_NAME)
        saved = (
            existing.XMLDesc(libvirt.VIR_STORAGE_XML_INACTIVE),
            existing.isActive(),
            existing.autostart(),
        )
        _drop(existing)
    clone = tmp_path_factory.mktemp("earlier-clone")
    old_path = str(clone / "var" / "agent" / REAL / "pool")
    pool = conn.storagePoolDefineXML(dx.pool_xml(OLD_NAME, old_path), 0)
    try:
        pool.build(0)
        pool.create(0)
        pool.setAutostart(1)
        shutil.rmtree(clone)  # "delete folder A"
        assert pool.isActive() and not Path(old_path).exists()
        yield old_path
    finally:
        _drop(pool)
        if saved is not None:
            xml, active, autostart = saved
            with contextlib.suppress(libvirt.libvirtError):
                restored = conn.storagePoolDefineXML(xml, 0)
                restored.setAutostart(int(autostart))
                if active:
                    restored.create(0)
        conn.close()


@pytest.fixture(scope="module")
def second_clone(request, earlier_clone, django_db_setup, live_server, tmp_path_factory):
    """A conductor and the real host's agent of this clone (its own pool directory under the real
    host's state directory, which ``realhost.sh teardown`` cleans)."""
    clear_broker()
    pool_path = settings.VAR_DIR / "realhost" / "reinstall" / "agent" / REAL / "pool"
    workers = Plane(tmp_path_factory.mktemp("worker-logs"))
    workers.env.update(
        ZENITH_PORTAL_URL=live_server.url,
        ZENITH_HEARTBEAT_INTERVAL="2",
        ZENITH_LIBVIRT_POOL_PATH=str(pool_path),
        ZENITH_STOP_TIMEOUT="30",
    )
    request.node.stash[PLANE_KEY] = workers
    try:
        workers.start(workers.launch_conductor(), workers.launch_agent(REAL, URI))
        yield workers, str(pool_path)
    finally:
        workers.stop()
        conn = libvirt.open(URI)
        try:
            for pool in conn.listAllStoragePools(0):
                with contextlib.suppress(libvirt.libvirtError):
                    if _pool_path(pool) == str(pool_path):
                        _drop(pool)
        finally:
            conn.close()


def test_an_agent_of_a_second_clone_launches_a_real_guest(cloud, second_clone, earlier_clone, realhost):
    plane, pool_path = second_clone
    services.seed_flavors()
    call_command("register_guest_image", dir=str(Path(realhost.kernel).parent), stdout=io.StringIO())
    wait_for(
        lambda: Host.objects.filter(name=REAL, compute__hypervisor_type__iexact="qemu").exists(),
        lambda: f"the real host to register\n{plane.logs()}",
    )
    client = token_client(cloud.member, cloud.project)
    response = client.post(
        API, {"name": "reinstalled", "flavor": "m1.tiny", "image": "zenith-guest"}, format="json"
    )
    assert response.status_code == 202, response.content
    instance_id = response.json()["id"]
    domain = f"zenith-{instance_id}"
    try:
        wait_status(client, instance_id, "ACTIVE", plane)
        wait_marker(client, instance_id, 1)  # the guest booted from its disk
        conn = libvirt.open(URI)
        try:
            disks = dx.disk_paths_from_xml(conn.lookupByName(domain).XMLDesc(0))
            # The agent's pool is its own, at its configured directory; the earlier clone's stays
            # where it was (not this agent's to change).
            ours = [p for p in conn.listAllStoragePools(0) if _pool_path(p) == pool_path]
            assert len(ours) == 1 and ours[0].name() != OLD_NAME and ours[0].isActive()
            assert _pool_path(conn.storagePoolLookupByName(OLD_NAME)) == earlier_clone
        finally:
            conn.close()
        assert disks and all(path.startswith(pool_path + "/") for path in disks), disks

        assert client.delete(f"{API}{instance_id}/").status_code == 202
        wait_for(lambda: Instance.objects.get(pk=instance_id).vm_state == "deleted", "delete", BOOT)
        assert client.get(f"{API}{instance_id}/").status_code == 404
        assert not any(Path(path).exists() for path in disks)
    finally:
        conn = libvirt.open(URI)
        try:
            with contextlib.suppress(libvirt.libvirtError):
                dom = conn.lookupByName(domain)
                with contextlib.suppress(libvirt.libvirtError):
                    dom.destroy()
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
        finally:
            conn.close()


@pytest.fixture
def own_pool(realhost):
    """A pool name and directory of this test's own (under the real host's state directory); the
    pool and its volumes are removed at the end."""
    name = f"zenith-reinstall-{uuid.uuid4().hex[:8]}"
    path = var_dir() / "realhost" / name / "pool"
    yield name, path
    conn = libvirt.open(URI)
    try:
        with contextlib.suppress(libvirt.libvirtError):
            pool = conn.storagePoolLookupByName(name)
            with contextlib.suppress(libvirt.libvirtError):
                for volume in pool.listAllVolumes(0):
                    volume.delete(0)
            _drop(pool)
    finally:
        conn.close()
    shutil.rmtree(path.parent, ignore_errors=True)


def _disk_in(driver: LibvirtDriver, realhost) -> str:
    disk = driver.create_disk_from_image(f"{driver.pool_name}-disk", realhost.root_disk, 1)
    assert os.path.exists(disk)
    return disk


def test_a_pool_whose_directory_was_removed_is_built_again(own_pool, realhost):
    """A clone removed and cloned again in the same folder while libvirtd ran: its pool is still
    active there, at a directory that no longer exists."""
    name, path = own_pool
    with LibvirtDriver(URI, pool_name=name, pool_path=str(path)) as first:
        first.ensure_pool()
    shutil.rmtree(path.parent)
    with LibvirtDriver(URI, pool_name=name, pool_path=str(path)) as second:
        assert _disk_in(second, realhost).startswith(f"{path}/")


def test_a_pool_of_its_name_at_a_removed_folder_is_redefined(own_pool, realhost, tmp_path):
    name, path = own_pool
    with LibvirtDriver(URI, pool_name=name, pool_path=str(tmp_path / "earlier-clone" / "pool")) as earlier:
        earlier.ensure_pool()
    shutil.rmtree(tmp_path / "earlier-clone")
    with LibvirtDriver(URI, pool_name=name, pool_path=str(path)) as agent:
        assert _disk_in(agent, realhost).startswith(f"{path}/")
        assert _pool_path(agent.ensure_pool()) == str(path)


def test_teardown_removes_the_pools_of_the_tests_only(realhost, tmp_path):
    """``realhost.sh teardown`` undefines the pools under its state directory (the tests' own),
    so that none is left pointing at a removed checkout; a pool elsewhere is not its to remove."""
    from tests.realhost.conftest import ROOT

    var = tmp_path / "var"
    conn = libvirt.open(URI)
    tag = uuid.uuid4().hex[:8]
    made = {}
    try:
        for name, path in [
            (f"zenith-teardown-{tag}", var / "realhost" / "pool"),
            (f"zenith-keep-{tag}", tmp_path / "elsewhere" / "pool"),
        ]:
            pool = conn.storagePoolDefineXML(dx.pool_xml(name, str(path)), 0)
            made[name] = pool
            pool.build(0)
            pool.create(0)
        done = subprocess.run(
            [str(ROOT / "workers/agent/realhost.sh"), "teardown"],
            env={**os.environ, "ZENITH_VAR_DIR": str(var)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        names = {p.name() for p in conn.listAllStoragePools(0)}
        assert f"zenith-teardown-{tag}" not in names and f"zenith-keep-{tag}" in names
        assert (var / "realhost" / "pool").is_dir()  # undefined only: the files stay
    finally:
        for pool in made.values():
            _drop(pool)
        conn.close()
