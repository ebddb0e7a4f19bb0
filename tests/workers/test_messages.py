"""Typed conductor <-> agent messages survive JSON and refuse what does not match them."""

import json

import pytest

from workers.messages import (
    MessageError,
    StorageBackendReport,
    StorageReport,
    VolumeConnection,
    VolumeRequest,
    VolumeResult,
    VolumeSource,
)


def roundtrip(message):
    return type(message).from_dict(json.loads(json.dumps(message.as_dict())))


def test_nested_messages_survive_json():
    request = VolumeRequest(
        backend="local", name="volume-1", size_gb=2, source=VolumeSource(kind="image", image={"url": "u"})
    )
    assert roundtrip(request) == request
    result = VolumeResult(ok=True, connection=VolumeConnection(type="network", path="p/i", hosts=("m:6789",)))
    assert roundtrip(result) == result
    report = StorageReport(
        backends=(
            StorageBackendReport(
                name="local", type="dir", pool="p", capacity_bytes=10, available_bytes=5, reaches=("*",)
            ),
        )
    )
    assert roundtrip(report) == report


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"backend": "b", "name": "n", "sizegb": 1}, "unknown keys sizegb"),
        ({"backend": "b"}, "missing keys name"),
        ("volume-1", "expected an object"),
    ],
)
def test_from_dict_refuses_what_does_not_match(data, says):
    with pytest.raises(MessageError, match=says):
        VolumeRequest.from_dict(data)


def test_nested_unknown_key_is_refused_too():
    with pytest.raises(MessageError, match="VolumeSource: unknown keys url"):
        VolumeRequest.from_dict({"backend": "b", "name": "n", "source": {"kind": "image", "url": "u"}})


def test_network_messages_survive_json_with_nested_tuples():
    from workers.messages import DhcpHost, FilterRule, NetworkSpec, NicSpec, PortFilter, SubnetSpec

    spec = NetworkSpec(
        network_id="n",
        name="zenith-net-1a2b3c4d",
        bridge="znb101",
        vlan=101,
        subnets=(
            SubnetSpec(cidr="10.0.0.0/24", gateway="10.0.0.1", allocation_pools=(("10.0.0.2", "10.0.0.9"),)),
        ),
        dhcp_hosts=(DhcpHost(mac="52:54:00:00:00:01", ip="10.0.0.2", hostname="vm-1"),),
    )
    assert roundtrip(spec) == spec
    assert roundtrip(spec).subnets[0].allocation_pools == (("10.0.0.2", "10.0.0.9"),)
    rules = (
        FilterRule(direction="ingress", protocol="tcp", port_min=22, port_max=22, remote_cidr="0.0.0.0/0"),
    )
    nic = NicSpec(
        port_id="p",
        mac="52:54:00:00:00:01",
        network=spec.name,
        bridge=spec.bridge,
        filter=PortFilter(
            port_id="p", name="zenith-port-1", mac="52:54:00:00:00:01", ips=("10.0.0.2",), rules=rules
        ),
    )
    assert roundtrip(nic) == nic
