"""The conductor's generic steps carry networking's work: ``run_transition`` sends a port's create
to its network's host (``network.<host>``, a NetworkSpec with the port's DHCP entry) and a port's
filter to its compute host; the host's signed answer (``transition_done``) settles the row; an
answer signed by another host settles nothing."""

from __future__ import annotations

import pytest

from networking import services
from networking.models import Network, Port
from tests.hostsigning import answer, enroll
from tests.workers.conftest import sent  # noqa: F401  (the send_task recorder fixture)
from workers import tasknames, tasks
from workers.messages import NetworkSpec, PortFilter

from .conftest import OK, active_network

pytestmark = pytest.mark.django_db


def test_a_port_create_goes_to_its_network_host_and_its_answer_settles_it(cloud, nethost, sent):  # noqa: F811
    key = enroll("net-1")
    network = active_network(cloud.ctx(cloud.member))
    port, _ = services.create_port(cloud.ctx(cloud.member), network=network)
    op_id = str(port.operation_id)
    tasks.run_transition(op_id, "port", str(port.pk), "create")
    (message,) = [m for m in sent if m.name == tasknames.AGENT_ENSURE_NETWORK]
    assert message.queue == "network.net-1"
    spec = NetworkSpec.from_dict(message.kwargs["spec"])
    assert [(h.mac, h.ip) for h in spec.dhcp_hosts] == [(port.mac, "10.10.0.2")]
    assert spec.operation_id == op_id and spec.subnets[0].cidr == "10.10.0.0/24"
    assert message.options["link"].kwargs == {
        "operation_id": op_id,
        "resource_type": "port",
        "resource_id": str(port.pk),
        "step": "create",
    }
    # an answer signed by another enrolled host is refused
    other = enroll("intruder")
    tasks.transition_done(OK, **answer("intruder", other, OK, **message.options["link"].kwargs))
    assert Port.objects.get(pk=port.pk).status == "DOWN"
    tasks.transition_done(OK, **answer("net-1", key, OK, **message.options["link"].kwargs))
    assert Port.objects.get(pk=port.pk).status == "ACTIVE"


def test_a_filter_goes_to_the_ports_compute_host(cloud, nethost, sent):  # noqa: F811
    network = active_network(cloud.ctx(cloud.member))
    port, _ = services.create_port(cloud.ctx(cloud.member), network=network)
    Port.objects.filter(pk=port.pk).update(host="cmp-7")
    port = services.PORT_LIFECYCLE.begin(cloud.ctx(cloud.member), port, "update_filter")
    tasks.run_transition(str(port.operation_id), "port", str(port.pk), "update_filter")
    (message,) = [m for m in sent if m.name == tasknames.AGENT_APPLY_PORT_FILTER]
    assert message.queue == "compute.cmp-7"
    assert PortFilter.from_dict(message.kwargs["port_filter"]).ips == ("10.10.0.2",)


def test_a_network_delete_sends_its_spec_and_frees_the_vlan(cloud, nethost, sent):  # noqa: F811
    key = enroll("net-1")
    network = active_network(cloud.ctx(cloud.member))
    network = services.delete_network(cloud.ctx(cloud.member), network)
    op_id = str(network.operation_id)
    tasks.run_transition(op_id, "network", str(network.pk), "delete")
    (message,) = [m for m in sent if m.name == tasknames.AGENT_DELETE_NETWORK]
    assert message.queue == "network.net-1"
    assert NetworkSpec.from_dict(message.kwargs["spec"]).name == network.libvirt_name
    done = {"ok": True, "message": "deleted", "existed": True}
    tasks.transition_done(done, **answer("net-1", key, done, **message.options["link"].kwargs))
    row = Network.objects.get(pk=network.pk)
    assert (row.status, row.vlan, row.bridge) == ("DELETED", None, None)
