"""Networking: project networks and their subnets, ports with their fixed IPs, floating IPs and
security groups.

A network lives on one network host (``workers.Host`` with the ``network`` role) and carries a VLAN
id and a bridge name that no other live network has (database constraints, so concurrent creates
cannot both take one). A port names its instance by UUID only (networking never imports compute), as
Neutron does. Every address handed out, a port's fixed IP or a floating IP, is an ``IPAllocation``
row, unique per subnet: the database, not a check in Python, keeps an address from being handed out
twice.
"""

import ipaddress
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from identity.scoping import ProjectOwnedQuerySet
from workers.models import AsyncResource, live_list_index, unique_idempotency_key


class NetworkQuerySet(ProjectOwnedQuerySet):
    def live(self):
        return self.exclude(status=Network.DELETED)

    def visible_to(self, ctx):
        """The project's own networks, the shared ones and the external ones (floating IPs come from
        them); cloud admins see every live network."""
        if ctx.is_admin:
            return self.live()
        if ctx.project is None:
            return self.none()
        return self.live().filter(Q(project_id=ctx.project.pk) | Q(shared=True) | Q(external=True))

    def across_projects(self, ctx):
        return self.live() if ctx.is_admin else self.none()


class Network(AsyncResource):
    """A layer-2 network: a libvirt network (bridge, VLAN tag, dnsmasq) on its network host.
    ``status`` is the stable state (Neutron's ``BUILD, ACTIVE, ERROR``), ``busy`` the transition
    running ("" when none)."""

    BUILD = "BUILD"
    ACTIVE = "ACTIVE"
    ERROR = "ERROR"
    DELETED = "DELETED"
    STATUSES = [(s, s) for s in (BUILD, ACTIVE, ERROR, DELETED)]
    UPDATING = "updating"
    DELETING = "deleting"
    BUSY = [(s, s) for s in (UPDATING, DELETING)]

    project = models.ForeignKey("identity.Project", on_delete=models.CASCADE, related_name="networks")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="networks"
    )
    description = models.TextField(blank=True, default="")
    shared = models.BooleanField(default=False, help_text="every project may put ports on it")
    external = models.BooleanField(default=False, help_text="floating IPs come from it (admins)")
    is_default = models.BooleanField(default=False, help_text="the project's network when none is named")
    vlan = models.PositiveIntegerField(null=True, blank=True, help_text="802.1q tag; None once deleted")
    bridge = models.CharField(max_length=15, null=True, blank=True, help_text="the host's bridge (IFNAMSIZ)")
    mtu = models.PositiveIntegerField(default=1500)
    host = models.ForeignKey(
        "workers.Host", null=True, blank=True, on_delete=models.SET_NULL, related_name="networks"
    )
    status = models.CharField(max_length=16, choices=STATUSES, default=BUILD)
    busy = models.CharField(max_length=16, choices=BUSY, blank=True, default="")
    applied = models.JSONField(default=list, blank=True, help_text="what its host last said it has")
    simulated = models.BooleanField(default=False, help_text="its host records instead of applying")
    idempotency_key = models.CharField(max_length=255, blank=True, default="")

    objects = NetworkQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        indexes = [live_list_index("network_live_list", status="DELETED")]
        constraints = [
            models.UniqueConstraint(fields=["vlan"], name="unique_network_vlan"),
            models.UniqueConstraint(fields=["bridge"], name="unique_network_bridge"),
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(is_default=True) & ~Q(status="DELETED"),
                name="one_default_network_per_project",
            ),
            unique_idempotency_key("unique_network_idempotency_key"),
        ]

    @property
    def libvirt_name(self) -> str:
        return f"zenith-net-{self.id.hex[:8]}"

    @property
    def display_status(self) -> str:
        return self.busy or self.status

    @property
    def transitional(self) -> bool:
        return bool(self.busy) or self.status == self.BUILD


class SubnetQuerySet(ProjectOwnedQuerySet):
    def visible_to(self, ctx):
        """The subnets of the networks the caller sees."""
        return self.filter(network__in=Network.objects.visible_to(ctx))


class Subnet(models.Model):
    """An address range of a network: ``allocation_pools`` are ``[[start, end], ...]`` inside the
    CIDR (inclusive), ``dns_servers`` a list of addresses, ``host_routes`` ``[[cidr, nexthop], ...]``."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    network = models.ForeignKey(Network, on_delete=models.CASCADE, related_name="subnets")
    project = models.ForeignKey("identity.Project", on_delete=models.CASCADE, related_name="subnets")
    name = models.CharField(max_length=255, blank=True, default="")
    cidr = models.CharField(max_length=43)
    ip_version = models.PositiveSmallIntegerField(choices=[(4, "IPv4"), (6, "IPv6")], default=4)
    gateway = models.CharField(max_length=39, blank=True, default="")
    allocation_pools = models.JSONField(default=list, blank=True)
    dns_servers = models.JSONField(default=list, blank=True)
    dhcp = models.BooleanField(default=True)
    host_routes = models.JSONField(default=list, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = SubnetQuerySet.as_manager()

    class Meta:
        ordering = ["created"]

    def __str__(self) -> str:
        return self.name or self.cidr

    @property
    def net(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.cidr)

    def pool_ranges(self) -> list[tuple[ipaddress.IPv4Address, ipaddress.IPv6Address]]:
        return [(ipaddress.ip_address(a), ipaddress.ip_address(b)) for a, b in self.allocation_pools]

    @property
    def pool_size(self) -> int:
        return sum(int(b) - int(a) + 1 for a, b in self.pool_ranges())


class PortQuerySet(ProjectOwnedQuerySet):
    def live(self):
        return self.exclude(status=Port.DELETED)

    def visible_to(self, ctx):
        return super().visible_to(ctx).live()

    def across_projects(self, ctx):
        return self.live() if ctx.is_admin else self.none()


def generate_mac() -> str:
    """A locally administered unicast MAC in OpenStack's ``fa:16:3e`` prefix."""
    tail = uuid.uuid4().bytes[:3]
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in tail)


class Port(AsyncResource):
    """A NIC on a network: a MAC (unique), fixed IPs (``IPAllocation`` rows), security groups, and
    the instance it belongs to (by UUID). ``status``: ``DOWN`` until its network host has its DHCP
    entry, then ``ACTIVE``; ``ERROR`` after a failure."""

    DOWN = "DOWN"
    ACTIVE = "ACTIVE"
    ERROR = "ERROR"
    DELETED = "DELETED"
    STATUSES = [(s, s) for s in (DOWN, ACTIVE, ERROR, DELETED)]
    DELETING = "deleting"
    BUSY = [(DELETING, DELETING)]

    name = models.CharField(max_length=255, blank=True, default="")
    network = models.ForeignKey(Network, on_delete=models.PROTECT, related_name="ports")
    project = models.ForeignKey("identity.Project", on_delete=models.CASCADE, related_name="ports")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="ports"
    )
    mac = models.CharField(max_length=17, null=True, blank=True, help_text="None once deleted")
    instance_id = models.UUIDField(null=True, blank=True, help_text="the instance it belongs to")
    device_owner = models.CharField(max_length=64, blank=True, default="", help_text="e.g. compute:nova")
    host = models.CharField(max_length=63, blank=True, default="", help_text="the compute host it is on")
    status = models.CharField(max_length=16, choices=STATUSES, default=DOWN)
    busy = models.CharField(max_length=16, choices=BUSY, blank=True, default="")
    security_groups = models.ManyToManyField("SecurityGroup", blank=True, related_name="ports")
    idempotency_key = models.CharField(max_length=255, blank=True, default="")

    objects = PortQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        indexes = [
            live_list_index("port_live_list", status="DELETED"),
            models.Index(fields=["instance_id"], name="port_instance"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["mac"], name="unique_port_mac"),
            unique_idempotency_key("unique_port_idempotency_key"),
        ]

    def __str__(self) -> str:
        return self.name or str(self.id)

    @property
    def display_status(self) -> str:
        return self.busy or self.status

    @property
    def filter_name(self) -> str:
        return f"zenith-port-{self.id.hex[:8]}"


class IPAllocation(models.Model):
    """One address handed out of a subnet, to a port (a fixed IP) or to a floating IP. Unique per
    subnet: two concurrent allocations of one address cannot both be inserted."""

    id = models.BigAutoField(primary_key=True)
    subnet = models.ForeignKey(Subnet, on_delete=models.CASCADE, related_name="allocations")
    address = models.CharField(max_length=39, help_text="canonical text (ipaddress)")
    port = models.ForeignKey(Port, null=True, blank=True, on_delete=models.CASCADE, related_name="fixed_ips")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["subnet", "id"]
        constraints = [
            models.UniqueConstraint(fields=["subnet", "address"], name="unique_address_per_subnet")
        ]

    def __str__(self) -> str:
        return self.address


class FloatingIPQuerySet(ProjectOwnedQuerySet):
    def live(self):
        return self.exclude(status=FloatingIP.DELETED)

    def visible_to(self, ctx):
        return super().visible_to(ctx).live()

    def across_projects(self, ctx):
        return self.live() if ctx.is_admin else self.none()


class FloatingIP(AsyncResource):
    """An address of an external network held by a project, NATed to one port's fixed IP while
    associated (``ACTIVE``), ``DOWN`` while not."""

    DOWN = "DOWN"
    ACTIVE = "ACTIVE"
    ERROR = "ERROR"
    DELETED = "DELETED"
    STATUSES = [(s, s) for s in (DOWN, ACTIVE, ERROR, DELETED)]
    ASSOCIATING = "associating"
    DISASSOCIATING = "disassociating"
    BUSY = [(s, s) for s in (ASSOCIATING, DISASSOCIATING)]

    name = models.CharField(max_length=255, blank=True, default="")
    network = models.ForeignKey(Network, on_delete=models.PROTECT, related_name="floating_ips")
    project = models.ForeignKey("identity.Project", on_delete=models.CASCADE, related_name="floating_ips")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="floating_ips",
    )
    allocation = models.OneToOneField(
        IPAllocation, null=True, blank=True, on_delete=models.SET_NULL, related_name="floating_ip"
    )
    address = models.CharField(max_length=39, null=True, blank=True, help_text="None once released")
    port = models.ForeignKey(
        Port, null=True, blank=True, on_delete=models.SET_NULL, related_name="floating_ips"
    )
    fixed_ip = models.CharField(max_length=39, blank=True, default="")
    status = models.CharField(max_length=16, choices=STATUSES, default=DOWN)
    busy = models.CharField(max_length=16, choices=BUSY, blank=True, default="")

    objects = FloatingIPQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        indexes = [live_list_index("floating_ip_live_list", status="DELETED")]
        constraints = [
            models.UniqueConstraint(fields=["address"], name="unique_floating_address"),
            models.UniqueConstraint(
                fields=["port"], condition=Q(port__isnull=False), name="one_floating_ip_per_port"
            ),
        ]

    def __str__(self) -> str:
        return self.address or str(self.id)

    @property
    def display_status(self) -> str:
        return self.busy or self.status


class SecurityGroupQuerySet(ProjectOwnedQuerySet):
    pass


class SecurityGroup(models.Model):
    """A named set of rules a port's traffic must match; ``default`` exists in every project once it
    is first used (ingress from its own members, all egress)."""

    DEFAULT = "default"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey("identity.Project", on_delete=models.CASCADE, related_name="security_groups")
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = SecurityGroupQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="unique_group_name")]

    def __str__(self) -> str:
        return self.name


class SecurityGroupRuleQuerySet(ProjectOwnedQuerySet):
    pass


class SecurityGroupRule(models.Model):
    """Allow traffic of ``protocol`` (ports ``port_min``-``port_max`` for tcp/udp; type/code for
    icmp) in ``direction`` from/to ``remote_cidr`` or the members of ``remote_group``."""

    INGRESS = "ingress"
    EGRESS = "egress"
    DIRECTIONS = [(s, s) for s in (INGRESS, EGRESS)]
    ETHERTYPES = [(s, s) for s in ("IPv4", "IPv6")]
    PROTOCOLS = [(s, s) for s in ("tcp", "udp", "icmp", "any")]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    group = models.ForeignKey(SecurityGroup, on_delete=models.CASCADE, related_name="rules")
    project = models.ForeignKey(
        "identity.Project", on_delete=models.CASCADE, related_name="security_group_rules"
    )
    direction = models.CharField(max_length=8, choices=DIRECTIONS)
    ethertype = models.CharField(max_length=4, choices=ETHERTYPES, default="IPv4")
    protocol = models.CharField(max_length=4, choices=PROTOCOLS, default="any")
    port_min = models.PositiveIntegerField(null=True, blank=True)
    port_max = models.PositiveIntegerField(null=True, blank=True)
    remote_cidr = models.CharField(max_length=43, blank=True, default="")
    remote_group = models.ForeignKey(
        SecurityGroup, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    description = models.CharField(max_length=255, blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)

    objects = SecurityGroupRuleQuerySet.as_manager()

    class Meta:
        ordering = ["created"]

    def __str__(self) -> str:
        ports = f" {self.port_min}-{self.port_max}" if self.port_min is not None else ""
        remote = self.remote_cidr or (f"group {self.remote_group_id}" if self.remote_group_id else "any")
        return f"{self.direction} {self.ethertype} {self.protocol}{ports} {remote}"
