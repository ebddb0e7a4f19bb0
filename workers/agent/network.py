"""Host-side tasks of networking; and the heartbeat's ``network`` section.

The network role (queue ``network.<host>``) keeps the host's libvirt networks and floating IPs; the
compute role (``compute.<host>``) plugs NICs into its domains and applies ports' nwfilters. Each task
takes one ``workers.messages`` message as a dict, under the keyword named after it, and answers a
``workers.messages.NetworkResult`` as a dict::

    send_task(AGENT_ENSURE_NETWORK, kwargs={"spec": NetworkSpec(...).as_dict()}, queue=f"network.{host}")
    send_task(AGENT_DELETE_NETWORK, kwargs={"spec": NetworkSpec(...).as_dict()}, queue=f"network.{host}")
    send_task(AGENT_SET_FLOATING_IP, kwargs={"request": FloatingIpRequest(...).as_dict()}, queue=...)
    send_task(AGENT_PLUG_NIC, kwargs={"nic": NicSpec(..., domain=...).as_dict()}, queue=f"compute.{host}")
    send_task(AGENT_UNPLUG_NIC, kwargs={"nic": NicSpec(..., domain=...).as_dict()}, queue=...)
    send_task(AGENT_APPLY_PORT_FILTER, kwargs={"port_filter": PortFilter(...).as_dict()}, queue=...)

Every task is idempotent (a redelivered message changes nothing more). A hypervisor error is an
answer (``ok: False``), not an exception.

On libvirt's test driver (a simulated host) what the driver has is applied for real (the network's
definition, a domain's NIC in its definition) and the rest is recorded, not applied: the test driver
has no nwfilter, runs no dnsmasq and the host adds no NAT rule for it. The answer then says
``simulated: True`` and ``applied`` lists exactly what a real host would have applied (the nwfilter
XML, the iptables rule lines); the records stay in ``<host dir>/network/`` for the heartbeat's
``network`` section (the admin view), until the filter or floating IP goes. A real host keeps the
floating IPs it applied there too (libvirt lists its networks and nwfilters itself).

Floating IPs on a real host run ``iptables`` and ``ip addr`` in the network namespace named by
``ZENITH_NETWORK_NETNS`` (the real host's, ``workers/agent/realhost.sh``) or, without it, in the
agent's own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import subprocess
from pathlib import Path

from celery import shared_task

from .. import tasknames
from ..messages import (
    FloatingIpRequest,
    MessageError,
    NetworkReport,
    NetworkResult,
    NetworkSpec,
    NicSpec,
    PortFilter,
)
from . import runtime
from .drivers.base import DomainNotFound, DriverError
from .drivers.libvirt import networks as nx
from .runtime import host_name

log = logging.getLogger(__name__)

NETNS_ENV = "ZENITH_NETWORK_NETNS"
COMMAND_TIMEOUT = 30.0


def _simulated(drv) -> bool:
    return drv.resolved_domain_type() == "test"


def _records() -> Path:
    return runtime.host_dir() / "network"


def _record(kind: str, name: str, lines: list[str]) -> None:
    """What a simulated host would have applied, kept for the heartbeat (``<kind>-<name>.json``)."""
    path = _records() / f"{kind}-{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(lines))
    tmp.replace(path)


def _forget(kind: str, name: str) -> bool:
    path = _records() / f"{kind}-{name}.json"
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed


def recorded(kind: str) -> dict[str, list[str]]:
    """The records of one kind (``filter``, ``floating``) on this host: name -> lines."""
    found = {}
    for path in sorted(_records().glob(f"{kind}-*.json")):
        try:
            found[path.stem[len(kind) + 1 :]] = json.loads(path.read_text())
        except (OSError, ValueError):
            log.warning("unreadable network record %s", path)
    return found


def _run(message_class, payload: dict, work) -> dict:
    """Parse ``payload`` as ``message_class``, run ``work(message, driver)``, every failure an answer."""
    try:
        message = message_class.from_dict(payload)
        return work(message, runtime.driver()).as_dict()
    except MessageError as exc:
        return NetworkResult(ok=False, error=str(exc)).as_dict()
    except DomainNotFound:
        domain = payload.get("domain") if isinstance(payload, dict) else ""
        return NetworkResult(ok=False, error=f"no domain {domain} on host {host_name()}").as_dict()
    except (DriverError, OSError, ValueError, subprocess.SubprocessError) as exc:
        log.warning("network task on %s failed: %s", host_name(), exc)
        return NetworkResult(ok=False, error=f"{type(exc).__name__}: {exc}").as_dict()


# -- networks (network role) -------------------------------------------------------------------


def _ensure(spec: NetworkSpec, drv) -> NetworkResult:
    done = drv.ensure_network(spec)
    simulated = _simulated(drv)
    notes = []
    if spec.vlan is not None and not done["vlan_tagged"]:
        why = "a simulated host tags nothing" if simulated else "this host's kernel has no 802.1q"
        notes.append(f"VLAN {spec.vlan} not tagged ({why}): a flat bridge")
    unserved = nx.dhcp_unserved(spec)
    if unserved:
        notes.append(f"no DHCP on {', '.join(unserved)} (one subnet per IP version, with a gateway)")
    if simulated:
        notes.append(
            "simulated host: the network is defined and started in libvirt's test driver, but no "
            "bridge exists and no dnsmasq serves its DHCP hosts"
        )
    what = ", ".join(done["changed"]) or "unchanged"
    return NetworkResult(
        ok=True,
        simulated=simulated,
        applied=(nx.network_summary(done["xml"], done["active"]),),
        existed=not done["created"],
        message="; ".join([f"{spec.name}: {what}", *notes]),
    )


@shared_task(name=tasknames.AGENT_ENSURE_NETWORK, acks_late=True)
def ensure_network(spec: dict) -> dict:
    """Define (or bring up to date), start and autostart the libvirt network of ``spec``; its DHCP
    hosts become exactly ``spec.dhcp_hosts``. The same spec again changes nothing."""
    return _run(NetworkSpec, spec, _ensure)


def _delete(spec: NetworkSpec, drv) -> NetworkResult:
    existed = drv.delete_network(spec.name)
    message = f"{spec.name} deleted" if existed else f"{spec.name} was not there"
    return NetworkResult(ok=True, simulated=_simulated(drv), existed=existed, message=message)


@shared_task(name=tasknames.AGENT_DELETE_NETWORK, acks_late=True)
def delete_network(spec: dict) -> dict:
    """Stop and undefine the libvirt network ``spec.name``; ok when it was not there."""
    return _run(NetworkSpec, spec, _delete)


# -- floating IPs (network role) -----------------------------------------------------------------


def _command(argv: list[str]) -> subprocess.CompletedProcess:
    netns = os.environ.get(NETNS_ENV, "").strip()
    prefix = ["ip", "netns", "exec", netns] if netns else []
    return subprocess.run(prefix + argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)


def _checked(argv: list[str]) -> None:
    done = _command(argv)
    if done.returncode != 0:
        raise OSError(f"{' '.join(argv)}: {(done.stderr or done.stdout).strip()}")


def _apply_floating(req: FloatingIpRequest) -> None:
    """Add (associate) or remove the address and rules on this host; each step only if needed."""
    address = nx.floating_ip_address(req)
    listed = _command(["ip", "-o", "addr", "show", "dev", req.external_bridge])
    has_address = listed.returncode == 0 and f" {address[0]} " in listed.stdout
    if req.associate and not has_address:
        _checked(["ip", "addr", "add", *address])
    elif not req.associate and has_address:
        _checked(["ip", "addr", "del", *address])
    for rule in nx.floating_ip_rules(req):
        present = _command(["iptables", *nx.with_verb(rule, "-C")]).returncode == 0
        if req.associate and not present:
            _checked(["iptables", *nx.with_verb(rule, "-I")])
        while not req.associate and present:
            _checked(["iptables", *nx.with_verb(rule, "-D")])
            present = _command(["iptables", *nx.with_verb(rule, "-C")]).returncode == 0


def _floating(req: FloatingIpRequest, drv) -> NetworkResult:
    lines = [f"ip addr add {' '.join(nx.floating_ip_address(req))}"]
    lines += [nx.rule_text(rule, "-I") for rule in nx.floating_ip_rules(req)]
    simulated = _simulated(drv)
    name = req.floating_ip
    if not simulated:
        try:
            _apply_floating(req)
        except (OSError, subprocess.SubprocessError):
            if req.associate:  # a failed association leaves nothing behind: the conductor counts none
                with contextlib.suppress(OSError, subprocess.SubprocessError):
                    _apply_floating(dataclasses.replace(req, associate=False))
            raise
    if req.associate:  # applied or, on a simulated host, what would have been: for the heartbeat
        existed = name in recorded("floating")
        _record("floating", name, lines)
    else:
        existed = _forget("floating", name)
    if simulated:
        verb = "recorded" if req.associate else "forgotten"
        return NetworkResult(
            ok=True,
            simulated=True,
            applied=tuple(lines) if req.associate else (),
            existed=existed,
            message=(
                f"simulated host: the NAT of {name} to {req.fixed_ip} is {verb}, not applied "
                "(no iptables for libvirt's test driver)"
            ),
        )
    action = f"{name} NATed to {req.fixed_ip}" if req.associate else f"{name} no longer NATed"
    return NetworkResult(
        ok=True, applied=tuple(lines) if req.associate else (), existed=existed, message=action
    )


@shared_task(name=tasknames.AGENT_SET_FLOATING_IP, acks_late=True)
def set_floating_ip(request: dict) -> dict:
    """Associate (``associate``) or disassociate a floating IP: its address on the external bridge
    and the DNAT/SNAT rules to and from the fixed IP. Removing what is absent is ok."""
    return _run(FloatingIpRequest, request, _floating)


# -- ports' filters and NICs (compute role) ------------------------------------------------------


def _filter(port: PortFilter, drv) -> NetworkResult:
    if _simulated(drv):
        xml = nx.nwfilter_xml(port)
        existed = port.name in recorded("filter")
        _record("filter", port.name, [xml])
        return NetworkResult(
            ok=True,
            simulated=True,
            applied=(xml,),
            existed=existed,
            message=f"simulated host: nwfilter {port.name} ({len(port.rules)} rules) recorded, not "
            "applied (libvirt's test driver has no nwfilter)",
        )
    xml = drv.define_nwfilter(port)
    return NetworkResult(
        ok=True, applied=(xml,), message=f"nwfilter {port.name} ({len(port.rules)} rules) defined"
    )


@shared_task(name=tasknames.AGENT_APPLY_PORT_FILTER, acks_late=True)
def apply_port_filter(port_filter: dict) -> dict:
    """Define (replace whole) the nwfilter of a port; libvirt applies it at once to the NICs that
    reference it (``NicSpec.filter``)."""
    return _run(PortFilter, port_filter, _filter)


def _plug(nic: NicSpec, drv) -> NetworkResult:
    if not nic.domain:
        return NetworkResult(ok=False, error="a NIC to plug names its domain")
    filtered = _filter(nic.filter, drv) if nic.filter is not None else None
    done = drv.plug_interface(nic.domain, nic)
    where = "live and in the definition" if done["live"] else "in the definition only"
    verb = "plugged" if done["plugged"] else "already plugged"
    notes = [f"NIC {nic.mac} on {nic.network} {verb} into {nic.domain} ({where})"]
    simulated = _simulated(drv)
    if simulated:
        notes.append("simulated host: no guest saw it")
    applied = [f"interface {nic.mac} network {nic.network} tap {done['target_dev']}"]
    if filtered is not None:
        applied += filtered.applied
    return NetworkResult(
        ok=True,
        simulated=simulated,
        applied=tuple(applied),
        existed=not done["plugged"],
        target_dev=done["target_dev"],
        message="; ".join(notes),
    )


@shared_task(name=tasknames.AGENT_PLUG_NIC, acks_late=True)
def plug_nic(nic: dict) -> dict:
    """Plug a NIC into domain ``nic.domain`` (its port's nwfilter first, when it has one): live and
    in the definition on a running guest, the definition only when it is not running."""
    return _run(NicSpec, nic, _plug)


def _unplug(nic: NicSpec, drv) -> NetworkResult:
    if not nic.domain:
        return NetworkResult(ok=False, error="a NIC to unplug names its domain")
    done = drv.unplug_interface(nic.domain, nic.mac)
    simulated = _simulated(drv)
    if nic.filter is not None:  # the port goes: its filter with it (nothing references it now)
        if simulated:
            _forget("filter", nic.filter.name)
        else:
            try:
                drv.undefine_nwfilter(nic.filter.name)
            except DriverError as exc:  # another NIC of the port still uses it: it stays
                log.info("nwfilter %s kept: %s", nic.filter.name, exc)
    if not done["unplugged"]:
        message = f"NIC {nic.mac} was not plugged into {nic.domain}"
    else:
        where = "live and from the definition" if done["live"] else "from the definition only"
        message = f"NIC {nic.mac} unplugged from {nic.domain} ({where})"
    return NetworkResult(
        ok=True,
        simulated=simulated,
        existed=done["unplugged"],
        target_dev=done["target_dev"],
        message=message,
    )


@shared_task(name=tasknames.AGENT_UNPLUG_NIC, acks_late=True)
def unplug_nic(nic: dict) -> dict:
    """Unplug the NIC of ``nic.mac`` from ``nic.domain``; ok when it was not there."""
    return _run(NicSpec, nic, _unplug)


# -- the heartbeat's ``network`` section ---------------------------------------------------------


def report_section(drv=None) -> dict:
    """The ``network`` section of this host's heartbeat: a ``workers.messages.NetworkReport`` of its
    Zenith networks (one summary line each), and on a simulated host what it recorded instead of
    applying (nwfilters, floating IPs' NAT rules). A driver that cannot list networks reports none."""
    drv = drv or runtime.driver()
    try:
        simulated = _simulated(drv)
        nets = drv.list_networks()
        filters = sorted(recorded("filter")) if simulated else drv.list_nwfilters()
        vlan = drv.network_vlan_supported()
    except DriverError:
        log.exception("networks of %s cannot be listed", host_name())
        return NetworkReport().as_dict()
    return NetworkReport(
        simulated=simulated,
        networks=tuple(nets),
        filters=tuple(filters),
        floating_ips=tuple(sorted(recorded("floating"))),
        vlan_tagging=vlan,
    ).as_dict()
