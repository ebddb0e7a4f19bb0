"""Network v2.0 (Neutron) at ``/network/v2.0``: version discovery, extensions, networks, subnets,
ports, floating IPs, security groups and their rules, quotas.

Each view translates the request, calls ``networking.services`` with the request's Context and
renders Neutron's shape (snake_case resources, ``project_id`` and ``tenant_id``). Errors are
Neutron's ``{"NeutronError": {"type", "message", "detail"}}``. Neutron's deletes answer 204 at once;
here a network's or a port's removal is carried out by its network host afterwards (the row shows
its stable status meanwhile), as the native API's 202 says.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Prefetch
from django.http import HttpRequest, JsonResponse
from django.urls import include, re_path

from identity import policy, quotas
from identity import services as identity_services
from identity.context import Context
from identity.errors import InvalidInput
from identity.models import Project
from identity.openstack.http import (
    NEUTRON,
    empty,
    endpoint,
    get_or_404,
    iso,
    json_body,
    not_found,
    query_bool,
    quota_limit,
    quota_project,
)

from .. import services
from ..models import FloatingIP, Network, Port, SecurityGroup, SecurityGroupRule, Subnet
from ..services import ipam

# Neutron's quota names -> Zenith's (None: a resource Zenith has no quota for, unlimited; 0: none).
QUOTAS = {
    "network": "networks",
    "port": "ports",
    "floatingip": "floating_ips",
    "security_group": "security_groups",
    "security_group_rule": "security_group_rules",
}
FIXED_QUOTAS = {"subnet": -1, "router": 0, "subnetpool": 0, "rbac_policy": 0}
# The extensions whose attributes Zenith serves (the clients ask before sending some of them).
EXTENSIONS = {
    "external-net": ("Neutron external network", "Adds external network attribute to network resource."),
    "security-group": ("security-group", "The security groups extension."),
    "quotas": ("Quota management support", "Expose functions for quotas management per project"),
    "quota_details": ("Quota details management support", "Expose functions for quotas usage statistics"),
    "project-id": ("project_id field enabled", "Extension that indicates that project_id field is enabled."),
    "standard-attr-description": ("standard-attr-description", "Extension to add descriptions."),
}
EXTENSION_UPDATED = "2017-01-01T10:00:00-00:00"
# Neutron's IP protocol numbers of the protocols Zenith's rules know.
PROTOCOL_NUMBERS = {"6": "tcp", "17": "udp", "1": "icmp"}


def base_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/network/v2.0")


def _owned(row) -> dict:
    project = str(row.project_id)
    return {"project_id": project, "tenant_id": project}


def _stamps(row) -> dict:
    return {
        "created_at": iso(row.created),
        "updated_at": iso(getattr(row, "updated", None) or row.created),
        "revision_number": 0,
        "tags": [],
    }


def _text(body: dict, key: str, default: str | None = None) -> str | None:
    value = body.get(key, default)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{key} must be a string.")
    return value


def _refuse_unknown(body: dict, known: set[str], what: str) -> None:
    unknown = set(body) - known
    if unknown:
        raise InvalidInput(f"Unrecognized attribute(s) '{', '.join(sorted(unknown))}' for {what}.")


def _same_project(ctx: Context, body: dict) -> None:
    """Zenith makes a resource in the token's project only: another ``project_id`` is refused."""
    for key in ("project_id", "tenant_id"):
        if body.get(key) not in (None, "", str(ctx.project_id)):
            raise InvalidInput(f"{key} must be the project of the token: resources are made in it.")


def _admin_state_up(body: dict) -> None:
    if body.get("admin_state_up", True) is not True:
        raise InvalidInput("admin_state_up false is not supported by this cloud.")


def _filter(request: HttpRequest, rows, fields: dict[str, str]):
    """``rows`` narrowed by the query parameters named in ``fields`` (Neutron name -> lookup); a
    repeated parameter matches any of its values."""
    for name, lookup in fields.items():
        values = [v for v in request.GET.getlist(name) if v != ""]
        if values:
            try:
                rows = rows.filter(**{f"{lookup}__in": values})
            except (ValidationError, ValueError):  # e.g. a malformed id: it matches nothing
                rows = rows.none()
    return rows


def _project_filter(request: HttpRequest, rows):
    return _filter(request, rows, {"project_id": "project_id", "tenant_id": "project_id", "id": "pk"})


def _bool_filter(request: HttpRequest, rows, name: str, field: str):
    value = query_bool(request, name)
    return rows if value is None else rows.filter(**{field: value})


# --- versions and extensions ----------------------------------------------------------------------


def versions(request, ctx):
    """``GET /network``: the one version (200, as Neutron answers)."""
    links = [{"rel": "self", "href": base_url(request) + "/"}]
    return JsonResponse({"versions": [{"id": "v2.0", "status": "CURRENT", "links": links}]})


RESOURCES = (
    ("network", "networks"),
    ("subnet", "subnets"),
    ("port", "ports"),
    ("floatingip", "floatingips"),
    ("security_group", "security-groups"),
    ("security_group_rule", "security-group-rules"),
    ("quota", "quotas"),
)


def version(request, ctx):
    """``GET /network/v2.0``: the resources served."""
    return JsonResponse(
        {
            "resources": [
                {
                    "name": name,
                    "collection": collection,
                    "links": [{"rel": "self", "href": f"{base_url(request)}/{collection}"}],
                }
                for name, collection in RESOURCES
            ]
        }
    )


def _extension(alias: str) -> dict:
    name, description = EXTENSIONS[alias]
    return {
        "alias": alias,
        "name": name,
        "description": description,
        "updated": EXTENSION_UPDATED,
        "links": [],
    }


def list_extensions(request, ctx: Context):
    return JsonResponse({"extensions": [_extension(alias) for alias in EXTENSIONS]})


def show_extension(request, ctx: Context, alias: str):
    if alias not in EXTENSIONS:
        return NEUTRON.error(404, f"Extension with alias {alias} does not exist.")
    return JsonResponse({"extension": _extension(alias)})


# --- networks -------------------------------------------------------------------------------------


def render_network(ctx: Context, network: Network) -> dict:
    body = {
        "id": str(network.pk),
        "name": network.name,
        "description": network.description,
        "status": network.status,
        "admin_state_up": True,
        "shared": network.shared,
        "router:external": network.external,
        "is_default": network.is_default,
        "mtu": network.mtu,
        "subnets": [str(s.pk) for s in network.subnets.all()],
        "availability_zones": ["nova"],
        "availability_zone_hints": [],
        "port_security_enabled": True,
        "ipv4_address_scope": None,
        "ipv6_address_scope": None,
        **_owned(network),
        **_stamps(network),
    }
    if ctx.is_admin:
        body.update(
            {
                "provider:network_type": "vlan",
                "provider:physical_network": network.host.name if network.host_id else None,
                "provider:segmentation_id": network.vlan,
            }
        )
    return body


def _network_rows(ctx: Context):
    subnets = Prefetch("subnets", queryset=Subnet.objects.only("id", "network_id", "created"))
    return Network.objects.visible_to(ctx).select_related("host").prefetch_related(subnets)


def list_networks(request, ctx: Context):
    policy.enforce(ctx, "networking:network:list")
    rows = _filter(request, _network_rows(ctx), {"name": "name", "status": "status"})
    rows = _project_filter(request, rows)
    rows = _bool_filter(request, rows, "shared", "shared")
    rows = _bool_filter(request, rows, "router:external", "external")
    return JsonResponse({"networks": [render_network(ctx, n) for n in rows]})


def _network(ctx: Context, network_id: str) -> Network:
    policy.enforce(ctx, "networking:network:show")
    return get_or_404(_network_rows(ctx), f"Network {network_id}", pk=network_id)


def show_network(request, ctx: Context, network_id: str):
    return JsonResponse({"network": render_network(ctx, _network(ctx, network_id))})


NETWORK_FIELDS = {
    "name",
    "description",
    "admin_state_up",
    "shared",
    "router:external",
    "mtu",
    "project_id",
    "tenant_id",
    "port_security_enabled",
    "availability_zone_hints",
}


def create_network(request, ctx: Context):
    """``POST /networks``: 201 with the network, ``BUILD`` until its network host has it."""
    body = json_body(request, "network")
    _refuse_unknown(body, NETWORK_FIELDS, "network")
    _same_project(ctx, body)
    _admin_state_up(body)
    if body.get("port_security_enabled", True) is not True:
        raise InvalidInput("port_security_enabled false is not supported by this cloud.")
    if body.get("availability_zone_hints") not in (None, [], ["nova"]):
        raise InvalidInput("The only availability zone is nova.")
    network, _ = services.create_network(
        ctx,
        name=_text(body, "name", ""),
        description=_text(body, "description"),
        shared=body.get("shared", False),
        external=body.get("router:external", False),
        mtu=body.get("mtu", 1500),
        idempotency_key=request.headers.get("Idempotency-Key"),
    )
    return JsonResponse({"network": render_network(ctx, _network(ctx, str(network.pk)))}, status=201)


def update_network(request, ctx: Context, network_id: str):
    """``PUT /networks/{id}``: name and description (sharing and external are set at create)."""
    body = json_body(request, "network")
    network = _network(ctx, network_id)
    _refuse_unknown(body, {"name", "description", "admin_state_up", "shared", "router:external"}, "network")
    _admin_state_up(body)
    for key, current in (("shared", network.shared), ("router:external", network.external)):
        if key in body and body[key] != current:
            raise InvalidInput(f"{key} is set when a network is created: it cannot change.")
    services.update_network(ctx, network, name=_text(body, "name"), description=_text(body, "description"))
    return JsonResponse({"network": render_network(ctx, _network(ctx, network_id))})


def delete_network(request, ctx: Context, network_id: str):
    services.delete_network(
        ctx, _network(ctx, network_id), idempotency_key=request.headers.get("Idempotency-Key")
    )
    return empty(204)


# --- subnets --------------------------------------------------------------------------------------


def render_subnet(subnet: Subnet) -> dict:
    return {
        "id": str(subnet.pk),
        "name": subnet.name,
        "description": "",
        "network_id": str(subnet.network_id),
        "cidr": subnet.cidr,
        "ip_version": subnet.ip_version,
        "gateway_ip": subnet.gateway or None,
        "allocation_pools": [{"start": a, "end": b} for a, b in subnet.allocation_pools],
        "dns_nameservers": list(subnet.dns_servers),
        "host_routes": [{"destination": d, "nexthop": n} for d, n in subnet.host_routes],
        "enable_dhcp": subnet.dhcp,
        "ipv6_ra_mode": None,
        "ipv6_address_mode": None,
        "subnetpool_id": None,
        "service_types": [],
        **_owned(subnet),
        **_stamps(subnet),
    }


def list_subnets(request, ctx: Context):
    policy.enforce(ctx, "networking:subnet:list")
    rows = Subnet.objects.visible_to(ctx)
    fields = {"name": "name", "network_id": "network_id", "cidr": "cidr", "ip_version": "ip_version"}
    rows = _project_filter(request, _filter(request, rows, fields))
    rows = _bool_filter(request, rows, "enable_dhcp", "dhcp")
    return JsonResponse({"subnets": [render_subnet(s) for s in rows]})


def _subnet(ctx: Context, subnet_id: str) -> Subnet:
    policy.enforce(ctx, "networking:subnet:show")
    return get_or_404(
        Subnet.objects.visible_to(ctx).select_related("network"), f"Subnet {subnet_id}", pk=subnet_id
    )


def show_subnet(request, ctx: Context, subnet_id: str):
    return JsonResponse({"subnet": render_subnet(_subnet(ctx, subnet_id))})


SUBNET_FIELDS = {
    "name",
    "description",
    "network_id",
    "cidr",
    "ip_version",
    "gateway_ip",
    "allocation_pools",
    "dns_nameservers",
    "enable_dhcp",
    "host_routes",
    "project_id",
    "tenant_id",
}


def _ip_version(value: Any) -> Any:
    if isinstance(value, str) and value.strip() in ("4", "6"):
        return int(value)
    return value


def create_subnet(request, ctx: Context):
    """``POST /subnets``: 201 (the network's host is told of it)."""
    body = json_body(request, "subnet")
    _refuse_unknown(body, SUBNET_FIELDS, "subnet")
    _same_project(ctx, body)
    if body.get("description"):
        raise InvalidInput("Zenith keeps no subnet description: send none.")
    network_id = _text(body, "network_id")
    if not network_id:
        raise InvalidInput("network_id is required.")
    _network(ctx, network_id)  # 404 for a network the caller cannot see
    subnet = services.create_subnet(
        ctx,
        network=network_id,
        cidr=body.get("cidr"),
        name=_text(body, "name", ""),
        ip_version=_ip_version(body.get("ip_version")),
        gateway=body.get("gateway_ip", ipam.DEFAULT),
        allocation_pools=body.get("allocation_pools"),
        dns_servers=body.get("dns_nameservers"),
        dhcp=body.get("enable_dhcp", True),
        host_routes=body.get("host_routes"),
    )
    return JsonResponse({"subnet": render_subnet(subnet)}, status=201)


def delete_subnet(request, ctx: Context, subnet_id: str):
    services.delete_subnet(ctx, _subnet(ctx, subnet_id))
    return empty(204)


# --- ports ----------------------------------------------------------------------------------------


def render_port(port: Port) -> dict:
    return {
        "id": str(port.pk),
        "name": port.name,
        "description": "",
        "network_id": str(port.network_id),
        "mac_address": port.mac,
        "fixed_ips": [
            {"subnet_id": str(ip.subnet_id), "ip_address": ip.address} for ip in port.fixed_ips.all()
        ],
        "device_id": str(port.instance_id) if port.instance_id else "",
        "device_owner": port.device_owner,
        "status": port.status,
        "admin_state_up": True,
        "security_groups": [str(g.pk) for g in port.security_groups.all()],
        "port_security_enabled": True,
        "allowed_address_pairs": [],
        "extra_dhcp_opts": [],
        "binding:host_id": port.host,
        "binding:vnic_type": "normal",
        "binding:vif_type": "bridge" if port.host else "unbound",
        "binding:vif_details": {},
        "binding:profile": {},
        **_owned(port),
        **_stamps(port),
    }


def _port_rows(ctx: Context):
    return services.ports_rows(Port.objects.visible_to(ctx))


def list_ports(request, ctx: Context):
    policy.enforce(ctx, "networking:port:list")
    fields = {
        "name": "name",
        "network_id": "network_id",
        "device_id": "instance_id",
        "device_owner": "device_owner",
        "mac_address": "mac",
        "status": "status",
    }
    rows = _project_filter(request, _filter(request, _port_rows(ctx), fields))
    return JsonResponse({"ports": [render_port(p) for p in rows]})


def _port(ctx: Context, port_id: str) -> Port:
    policy.enforce(ctx, "networking:port:show")
    return get_or_404(_port_rows(ctx), f"Port {port_id}", pk=port_id)


def show_port(request, ctx: Context, port_id: str):
    return JsonResponse({"port": render_port(_port(ctx, port_id))})


PORT_FIELDS = {
    "name",
    "description",
    "network_id",
    "fixed_ips",
    "mac_address",
    "device_id",
    "device_owner",
    "security_groups",
    "admin_state_up",
    "project_id",
    "tenant_id",
}


def _fixed_ip(body: dict) -> dict:
    """The one fixed IP a port may ask for: ``[{"subnet_id", "ip_address"}]`` (either may be left out)."""
    fixed = body.get("fixed_ips")
    if fixed in (None, []):
        return {}
    if not isinstance(fixed, list) or len(fixed) != 1 or not isinstance(fixed[0], dict):
        raise InvalidInput("fixed_ips is a list of one {subnet_id, ip_address}: a port has one address here.")
    _refuse_unknown(fixed[0], {"subnet_id", "ip_address"}, "fixed_ips")
    return {"subnet": fixed[0].get("subnet_id"), "ip_address": fixed[0].get("ip_address")}


def create_port(request, ctx: Context):
    """``POST /ports``: 201 with the port, ``DOWN`` until its network host has its DHCP entry."""
    body = json_body(request, "port")
    _refuse_unknown(body, PORT_FIELDS, "port")
    _same_project(ctx, body)
    _admin_state_up(body)
    if body.get("mac_address") not in (None, ""):
        raise InvalidInput("mac_address cannot be chosen here: every port gets a generated one.")
    if body.get("description"):
        raise InvalidInput("Zenith keeps no port description: send none.")
    network_id = _text(body, "network_id")
    if not network_id:
        raise InvalidInput("network_id is required.")
    _network(ctx, network_id)
    port, _ = services.create_port(
        ctx,
        network=network_id,
        name=_text(body, "name", ""),
        security_groups=body.get("security_groups"),
        instance_id=_text(body, "device_id"),
        device_owner=_text(body, "device_owner", "") or "",
        idempotency_key=request.headers.get("Idempotency-Key"),
        **_fixed_ip(body),
    )
    return JsonResponse({"port": render_port(_port(ctx, str(port.pk)))}, status=201)


def update_port(request, ctx: Context, port_id: str):
    """``PUT /ports/{id}``: its name or its security groups."""
    body = json_body(request, "port")
    _refuse_unknown(body, {"name", "security_groups", "admin_state_up"}, "port")
    _admin_state_up(body)
    port = _port(ctx, port_id)
    services.update_port(ctx, port, name=_text(body, "name"), security_groups=body.get("security_groups"))
    return JsonResponse({"port": render_port(_port(ctx, port_id))})


def delete_port(request, ctx: Context, port_id: str):
    services.delete_port(ctx, _port(ctx, port_id), idempotency_key=request.headers.get("Idempotency-Key"))
    return empty(204)


# --- floating IPs ---------------------------------------------------------------------------------


def render_floating_ip(fip: FloatingIP) -> dict:
    return {
        "id": str(fip.pk),
        "floating_ip_address": fip.address,
        "floating_network_id": str(fip.network_id),
        "port_id": str(fip.port_id) if fip.port_id else None,
        "fixed_ip_address": fip.fixed_ip or None,
        "status": fip.status,
        "router_id": None,
        "description": "",
        "port_details": None,
        "dns_domain": "",
        "dns_name": "",
        "port_forwardings": [],
        **_owned(fip),
        **_stamps(fip),
    }


def list_floating_ips(request, ctx: Context):
    policy.enforce(ctx, "networking:floating_ip:list")
    fields = {
        "floating_network_id": "network_id",
        "port_id": "port_id",
        "floating_ip_address": "address",
        "fixed_ip_address": "fixed_ip",
        "status": "status",
    }
    rows = _project_filter(request, _filter(request, FloatingIP.objects.visible_to(ctx), fields))
    return JsonResponse({"floatingips": [render_floating_ip(f) for f in rows]})


def _floating_ip(ctx: Context, fip_id: str) -> FloatingIP:
    policy.enforce(ctx, "networking:floating_ip:show")
    return get_or_404(FloatingIP.objects.visible_to(ctx), f"Floating IP {fip_id}", pk=fip_id)


def show_floating_ip(request, ctx: Context, fip_id: str):
    return JsonResponse({"floatingip": render_floating_ip(_floating_ip(ctx, fip_id))})


FLOATING_FIELDS = {
    "floating_network_id",
    "floating_ip_address",
    "port_id",
    "fixed_ip_address",
    "description",
    "project_id",
    "tenant_id",
}


def _no_fixed_ip_choice(body: dict) -> None:
    if body.get("fixed_ip_address") not in (None, ""):
        raise InvalidInput("fixed_ip_address cannot be chosen: the port's IPv4 address is used.")
    if body.get("description"):
        raise InvalidInput("Zenith keeps no floating IP description: send none.")


def create_floating_ip(request, ctx: Context):
    """``POST /floatingips``: an address of the external network, associated with ``port_id`` if
    one is named (both or neither)."""
    body = json_body(request, "floatingip")
    _refuse_unknown(body, FLOATING_FIELDS, "floatingip")
    _same_project(ctx, body)
    _no_fixed_ip_choice(body)
    network_id = _text(body, "floating_network_id")
    if not network_id:
        raise InvalidInput("floating_network_id is required.")
    _network(ctx, network_id)
    port_id = _text(body, "port_id")
    with transaction.atomic():
        fip = services.allocate_floating_ip(
            ctx, network=network_id, ip_address=_text(body, "floating_ip_address")
        )
        if port_id:
            fip = services.associate(ctx, fip, _port(ctx, port_id))
    return JsonResponse({"floatingip": render_floating_ip(_floating_ip(ctx, str(fip.pk)))}, status=201)


def update_floating_ip(request, ctx: Context, fip_id: str):
    """``PUT /floatingips/{id}``: ``port_id`` associates it, ``null`` disassociates it."""
    body = json_body(request, "floatingip")
    _refuse_unknown(body, {"port_id", "fixed_ip_address", "description"}, "floatingip")
    _no_fixed_ip_choice(body)
    if "port_id" not in body:
        raise InvalidInput("Send port_id: a port's id to associate, null to disassociate.")
    fip = _floating_ip(ctx, fip_id)
    port_id = _text(body, "port_id")
    key = request.headers.get("Idempotency-Key")
    if port_id:
        services.associate(ctx, fip, _port(ctx, port_id), idempotency_key=key)
    else:
        services.disassociate(ctx, fip, idempotency_key=key)
    return JsonResponse({"floatingip": render_floating_ip(_floating_ip(ctx, fip_id))})


def delete_floating_ip(request, ctx: Context, fip_id: str):
    services.release_floating_ip(ctx, _floating_ip(ctx, fip_id))
    return empty(204)


# --- security groups and rules --------------------------------------------------------------------


def render_rule(rule: SecurityGroupRule) -> dict:
    return {
        "id": str(rule.pk),
        "security_group_id": str(rule.group_id),
        "direction": rule.direction,
        "ethertype": rule.ethertype,
        "protocol": None if rule.protocol == "any" else rule.protocol,
        "port_range_min": rule.port_min,
        "port_range_max": rule.port_max,
        "remote_ip_prefix": rule.remote_cidr or None,
        "remote_group_id": str(rule.remote_group_id) if rule.remote_group_id else None,
        "remote_address_group_id": None,
        "normalized_cidr": rule.remote_cidr or None,
        "description": rule.description,
        **_owned(rule),
        **_stamps(rule),
    }


def render_group(group: SecurityGroup) -> dict:
    return {
        "id": str(group.pk),
        "name": group.name,
        "description": group.description,
        "stateful": True,
        "shared": False,
        "security_group_rules": [render_rule(r) for r in group.rules.all()],
        **_owned(group),
        **_stamps(group),
    }


def _group_rows(ctx: Context):
    return SecurityGroup.objects.visible_to(ctx).prefetch_related("rules")


def list_groups(request, ctx: Context):
    policy.enforce(ctx, "networking:security_group:list")
    if ctx.project is not None:
        services.ensure_default_security_group(ctx)
    rows = _project_filter(request, _filter(request, _group_rows(ctx), {"name": "name"}))
    return JsonResponse({"security_groups": [render_group(g) for g in rows]})


def _group(ctx: Context, group_id: str) -> SecurityGroup:
    policy.enforce(ctx, "networking:security_group:show")
    return get_or_404(_group_rows(ctx), f"Security group {group_id}", pk=group_id)


def show_group(request, ctx: Context, group_id: str):
    return JsonResponse({"security_group": render_group(_group(ctx, group_id))})


def create_group(request, ctx: Context):
    body = json_body(request, "security_group")
    _refuse_unknown(body, {"name", "description", "stateful", "project_id", "tenant_id"}, "security_group")
    _same_project(ctx, body)
    if body.get("stateful", True) is not True:
        raise InvalidInput("Stateless security groups are not supported by this cloud.")
    group = services.create_security_group(
        ctx, name=_text(body, "name", ""), description=_text(body, "description", "")
    )
    return JsonResponse({"security_group": render_group(_group(ctx, str(group.pk)))}, status=201)


def delete_group(request, ctx: Context, group_id: str):
    services.delete_security_group(ctx, _group(ctx, group_id))
    return empty(204)


def list_rules(request, ctx: Context):
    policy.enforce(ctx, "networking:security_group_rule:list")
    fields = {
        "security_group_id": "group_id",
        "direction": "direction",
        "ethertype": "ethertype",
        "remote_group_id": "remote_group_id",
        "remote_ip_prefix": "remote_cidr",
    }
    rows = _project_filter(request, _filter(request, SecurityGroupRule.objects.visible_to(ctx), fields))
    return JsonResponse({"security_group_rules": [render_rule(r) for r in rows]})


def _rule(ctx: Context, rule_id: str) -> SecurityGroupRule:
    policy.enforce(ctx, "networking:security_group_rule:show")
    return get_or_404(SecurityGroupRule.objects.visible_to(ctx), f"Security group rule {rule_id}", pk=rule_id)


def show_rule(request, ctx: Context, rule_id: str):
    return JsonResponse({"security_group_rule": render_rule(_rule(ctx, rule_id))})


RULE_FIELDS = {
    "security_group_id",
    "direction",
    "ethertype",
    "protocol",
    "port_range_min",
    "port_range_max",
    "remote_ip_prefix",
    "remote_group_id",
    "description",
    "project_id",
    "tenant_id",
}


def _protocol(value: Any) -> Any:
    """Neutron's protocol: a name, an IP protocol number (``6``) or none (any)."""
    if value is None:
        return "any"
    text = str(value).strip().lower()
    return PROTOCOL_NUMBERS.get(text, text)


def create_rule(request, ctx: Context):
    body = json_body(request, "security_group_rule")
    _refuse_unknown(body, RULE_FIELDS, "security_group_rule")
    _same_project(ctx, body)
    group_id = _text(body, "security_group_id")
    if not group_id:
        raise InvalidInput("security_group_id is required.")
    group = _group(ctx, group_id)
    rule = services.create_rule(
        ctx,
        group=group,
        description=_text(body, "description", ""),
        direction=body.get("direction"),
        ethertype=body.get("ethertype") or "IPv4",
        protocol=_protocol(body.get("protocol")),
        port_min=body.get("port_range_min"),
        port_max=body.get("port_range_max"),
        remote_cidr=_text(body, "remote_ip_prefix", ""),
        remote_group=_text(body, "remote_group_id"),
    )
    return JsonResponse({"security_group_rule": render_rule(rule)}, status=201)


def delete_rule(request, ctx: Context, rule_id: str):
    services.delete_rule(ctx, _rule(ctx, rule_id))
    return empty(204)


# --- quotas ---------------------------------------------------------------------------------------


def _quota(project, detail: bool) -> dict:
    limits = quotas.limits(project)
    used = quotas.usage(project) if detail else {}
    body = {}
    for name, ours in QUOTAS.items():
        body[name] = (
            {"limit": limits[ours], "used": used.get(ours, 0), "reserved": 0} if detail else limits[ours]
        )
    for name, value in FIXED_QUOTAS.items():
        body[name] = {"limit": value, "used": 0, "reserved": 0} if detail else value
    return body


def show_quota(request, ctx: Context, project_id: str):
    """``GET /quotas/{project_id}``."""
    return JsonResponse({"quota": _quota(quota_project(ctx, project_id), detail=False)})


def quota_details(request, ctx: Context, project_id: str):
    """``GET /quotas/{project_id}/details.json``: limits with what is used."""
    return JsonResponse({"quota": _quota(quota_project(ctx, project_id), detail=True)})


def quota_defaults(request, ctx: Context, project_id: str):
    quota_project(ctx, project_id)
    defaults = {name: settings.ZENITH_DEFAULT_QUOTAS[ours] for name, ours in QUOTAS.items()}
    return JsonResponse({"quota": {**defaults, **FIXED_QUOTAS}})


def update_quota(request, ctx: Context, project_id: str):
    """``PUT /quotas/{project_id}`` (cloud admins)."""
    body = json_body(request, "quota")
    project = get_or_404(Project.objects.visible_to(ctx), f"Project {project_id}", pk=project_id)
    changes = {}
    for name, value in body.items():
        if name in QUOTAS:
            changes[QUOTAS[name]] = quota_limit(value, name)
        elif name in FIXED_QUOTAS:
            if quota_limit(value, name) != FIXED_QUOTAS[name]:
                raise InvalidInput(f"The quota {name} is fixed at {FIXED_QUOTAS[name]} in this cloud.")
        else:
            raise InvalidInput(f"Unrecognized quota '{name}'.")
    identity_services.set_quotas(ctx, project, changes)
    return JsonResponse({"quota": _quota(project, detail=False)})


def delete_quota(request, ctx: Context, project_id: str):
    """``DELETE /quotas/{project_id}``: back to the defaults (cloud admins)."""
    project = get_or_404(Project.objects.visible_to(ctx), f"Project {project_id}", pk=project_id)
    identity_services.set_quotas(
        ctx, project, {ours: settings.ZENITH_DEFAULT_QUOTAS[ours] for ours in QUOTAS.values()}
    )
    return empty(204)


# --- URLs -----------------------------------------------------------------------------------------

ID = r"(?P<{}>[^/]+?)"
# Neutron accepts a ``.json`` suffix on every path (the CLI asks for details.json).
JSON = r"(?:\.json)?$"


def _collection(path: str, **handlers):
    return re_path(rf"^{path}{JSON}", endpoint(NEUTRON, **handlers))


def _member(path: str, key: str, **handlers):
    return re_path(rf"^{path}/{ID.format(key)}{JSON}", endpoint(NEUTRON, **handlers))


PID = ID.format("project_id")

v2 = [
    re_path(rf"^{JSON}", endpoint(NEUTRON, auth=False, get=version)),
    _collection("extensions", get=list_extensions),
    _member("extensions", "alias", get=show_extension),
    _collection("networks", get=list_networks, post=create_network),
    _member("networks", "network_id", get=show_network, put=update_network, delete=delete_network),
    _collection("subnets", get=list_subnets, post=create_subnet),
    _member("subnets", "subnet_id", get=show_subnet, delete=delete_subnet),
    _collection("ports", get=list_ports, post=create_port),
    _member("ports", "port_id", get=show_port, put=update_port, delete=delete_port),
    _collection("floatingips", get=list_floating_ips, post=create_floating_ip),
    _member("floatingips", "fip_id", get=show_floating_ip, put=update_floating_ip, delete=delete_floating_ip),
    _collection("security-groups", get=list_groups, post=create_group),
    _member("security-groups", "group_id", get=show_group, delete=delete_group),
    _collection("security-group-rules", get=list_rules, post=create_rule),
    _member("security-group-rules", "rule_id", get=show_rule, delete=delete_rule),
    re_path(rf"^quotas/{PID}/details{JSON}", endpoint(NEUTRON, get=quota_details)),
    re_path(rf"^quotas/{PID}/default{JSON}", endpoint(NEUTRON, get=quota_defaults)),
    _member("quotas", "project_id", get=show_quota, put=update_quota, delete=delete_quota),
    re_path(r"^.*$", not_found(NEUTRON)),
]

urlpatterns = [
    re_path(r"^$", endpoint(NEUTRON, auth=False, get=versions)),
    re_path(r"^v2\.0(?:/|$)", include(v2)),
    re_path(r"^.*$", not_found(NEUTRON)),
]
