"""The network role through the broker: a real agent process (``manage.py agent --roles
compute,storage,network``) consumes ``network.<host>`` and ``compute.<host>`` and answers the typed
networking messages on libvirt's test driver (a simulated host); a real conductor accepts its
heartbeat, network section and all. The networking app's side (ports, callbacks) is not here: the
tasks are sent by name and their answers read back, as the conductor would."""

from __future__ import annotations

import uuid

import pytest
from celery import current_app

from tests.workers.test_agent_network import net_spec
from workers import processes, tasknames
from workers.messages import (
    DhcpHost,
    FloatingIpRequest,
    NetworkResult,
    NicSpec,
    PortFilter,
    SubnetSpec,
    VolumeConnection,
)
from workers.models import Host

from .conftest import PLANE_KEY, Plane, clear_broker, shut_down
from .test_async_plane import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

HOST = "net-int"
ROLES = ["compute", "storage", "network"]


@pytest.fixture(scope="module")
def network_agent(request, django_db_setup, django_db_blocker, tmp_path_factory):
    clear_broker()
    workers = Plane(tmp_path_factory.mktemp("worker-logs"))
    workers.env.update(ZENITH_HEARTBEAT_INTERVAL="2")
    request.node.stash[PLANE_KEY] = workers
    try:
        launched = [
            workers.launch_conductor(),
            workers.launch_agent(HOST, processes.simulated_host_uri(), roles=ROLES),
        ]
        workers.start(*launched)
        yield workers
    finally:
        shut_down(workers, django_db_blocker)


def call(name: str, queue: str, timeout: float = 20, **kwargs) -> dict:
    result = current_app.send_task(name, kwargs=kwargs, queue=queue)
    try:
        return result.get(timeout=timeout, interval=0.01)
    finally:
        result.forget()


def network_call(name: str, **kwargs) -> NetworkResult:
    return NetworkResult.from_dict(call(name, f"network.{HOST}", **kwargs))


def compute_call(name: str, **kwargs) -> NetworkResult:
    return NetworkResult.from_dict(call(name, f"compute.{HOST}", **kwargs))


def test_network_host_answers_ensure_delete_and_floating_ips(network_agent):
    spec = net_spec(
        vlan=102,
        subnets=(
            SubnetSpec(
                cidr="10.40.0.0/24", gateway="10.40.0.1", allocation_pools=(("10.40.0.10", "10.40.0.50"),)
            ),
        ),
        dhcp_hosts=(DhcpHost(mac="52:54:00:bb:00:01", ip="10.40.0.10", hostname="one"),),
    )
    ensured = network_call(tasknames.AGENT_ENSURE_NETWORK, spec=spec.as_dict())
    assert ensured.ok and ensured.simulated and not ensured.existed, ensured
    assert ensured.applied == (
        f"network {spec.name} (bridge {spec.bridge}, 10.40.0.1/24, 1 DHCP host, active)",
    )
    assert "VLAN 102 not tagged" in ensured.message
    again = network_call(tasknames.AGENT_ENSURE_NETWORK, spec=spec.as_dict())
    assert again.ok and again.existed and f"{spec.name}: unchanged" in again.message

    req = FloatingIpRequest(
        floating_ip="172.24.4.30",
        fixed_ip="10.40.0.10",
        external_bridge="znb-ext",
        internal_bridge=spec.bridge,
    )
    associated = network_call(tasknames.AGENT_SET_FLOATING_IP, request=req.as_dict())
    assert associated.ok and associated.simulated and "recorded, not applied" in associated.message
    assert any("DNAT --to-destination 10.40.0.10" in line for line in associated.applied)
    removed = network_call(
        tasknames.AGENT_SET_FLOATING_IP,
        request=FloatingIpRequest(**{**req.as_dict(), "associate": False}).as_dict(),
    )
    assert removed.ok and removed.existed and removed.applied == ()

    deleted = network_call(tasknames.AGENT_DELETE_NETWORK, spec=spec.as_dict())
    assert deleted.ok and deleted.existed
    assert not network_call(tasknames.AGENT_DELETE_NETWORK, spec=spec.as_dict()).existed

    # The heartbeat carries the network role: the conductor records it (and no receiver needs it).
    host = wait_for(
        lambda: Host.objects.filter(name=HOST).first(), lambda: f"host {HOST}:\n{network_agent.logs()}"
    )
    assert host.roles == ROLES


def test_compute_host_spawns_with_a_nic_and_plugs_and_unplugs_another(network_agent):
    iid = str(uuid.uuid4())
    domain = f"zenith-{iid}"
    port = str(uuid.uuid4())
    pf = PortFilter(
        port_id=port, name=f"zenith-port-{port[:8]}", mac="52:54:00:bb:00:02", ips=("10.40.0.11",)
    )
    first = NicSpec(port_id=port, mac=pf.mac, network="zenith-net-a", bridge="znb-a", filter=pf)
    instance = {"id": iid, "name": "vm", "domain": domain, "vcpus": 1, "memory_mb": 64, "disk_gb": 1}
    root = VolumeConnection(type="file", path="/var/lib/zenith/volumes/root.qcow2", format="qcow2")
    image = {"name": "x", "url": "http://127.0.0.1:9/never", "size": 0, "disk_format": "qcow2"}
    spawned = call(
        tasknames.AGENT_SPAWN_INSTANCE,
        f"compute.{HOST}",
        operation_id=str(uuid.uuid4()),
        instance={**instance, "nics": [first.as_dict()]},
        image=image,
        root_volume=root.as_dict(),
    )
    assert spawned["ok"], spawned
    # The spawn's NIC is there already: plugging it again changes nothing.
    assert compute_call(
        tasknames.AGENT_PLUG_NIC, nic=NicSpec(**{**first.as_dict(), "domain": domain}).as_dict()
    ).existed

    second = NicSpec(
        port_id=str(uuid.uuid4()),
        mac="52:54:00:bb:00:03",
        network="zenith-net-b",
        bridge="znb-b",
        domain=domain,
    )
    plugged = compute_call(tasknames.AGENT_PLUG_NIC, nic=second.as_dict())
    assert plugged.ok and plugged.simulated and not plugged.existed and plugged.target_dev.startswith("znt")
    filtered = compute_call(tasknames.AGENT_APPLY_PORT_FILTER, port_filter=pf.as_dict())
    assert filtered.ok and filtered.simulated and filtered.existed and "<filter" in filtered.applied[0]
    unplugged = compute_call(tasknames.AGENT_UNPLUG_NIC, nic=second.as_dict())
    assert unplugged.ok and unplugged.existed and unplugged.target_dev == plugged.target_dev
    assert not compute_call(tasknames.AGENT_UNPLUG_NIC, nic=second.as_dict()).existed
    gone = call(
        tasknames.AGENT_INSTANCE_ACTION, f"compute.{HOST}", action="delete", domain=domain, instance_id=iid
    )
    assert gone["ok"], gone
