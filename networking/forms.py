"""Dashboard forms for networks (with their first subnet), floating IPs and security groups. They
parse input; networking.services decides what is valid, and its refusal comes back on the field its
message names (``field_of``) or on the form."""

from __future__ import annotations

import re

from django import forms

from identity.forms import IdempotentForm

from .models import SecurityGroupRule
from .services import ipam

# The service's InvalidInput messages begin with what they refuse: the form field that holds it.
MESSAGE_FIELDS = (
    ("cidr ", "cidr"),
    ("gateway ", "gateway"),
    ("dns server", "dns_servers"),
    ("dns_servers", "dns_servers"),
    ("Network name", "name"),
    ("A description", "description"),
    ("Security group name", "name"),
    ("This project has a security group named", "name"),
    ("Every project has its default group", "name"),
    ("port_min and port_max", "port_max"),
    ("port_min", "port_min"),
    ("port_max", "port_max"),
    ("the icmp type", "port_min"),
    ("the icmp code", "port_max"),
    ("An icmp code", "port_max"),
    ("A port range", "port_min"),
    ("remote_cidr", "remote_cidr"),
    ("A rule has a remote_cidr", "remote_group"),
)


def field_of(message: str) -> str | None:
    """The field a service's refusal is about (None: the whole form)."""
    for prefix, field in MESSAGE_FIELDS:
        if message.startswith(prefix):
            return field
    return None


class NetworkCreateForm(IdempotentForm):
    """A network and its first subnet."""

    name = forms.CharField(max_length=255, error_messages={"required": "Give the network a name."})
    description = forms.CharField(required=False, max_length=1024, widget=forms.Textarea(attrs={"rows": 2}))
    cidr = forms.CharField(
        max_length=43,
        label="Subnet CIDR",
        error_messages={"required": "Give the subnet's network, e.g. 10.20.0.0/24."},
        help_text="e.g. 10.20.0.0/24 (IPv4) or fd00:20::/64 (IPv6).",
    )
    gateway = forms.CharField(
        required=False, max_length=39, label="Gateway", help_text="Empty: the subnet's first address."
    )
    no_gateway = forms.BooleanField(required=False, label="No gateway")
    dhcp = forms.BooleanField(required=False, initial=True, label="DHCP")
    dns_servers = forms.CharField(
        required=False,
        max_length=512,
        label="DNS servers",
        help_text=f"Up to {ipam.MAX_DNS} addresses, separated by spaces or commas.",
    )

    def subnet_kwargs(self) -> dict:
        """The arguments of ``services.create_subnet`` (but the network) these answers mean."""
        data = self.cleaned_data
        kwargs = {
            "cidr": data["cidr"],
            "dhcp": data["dhcp"],
            "dns_servers": [s for s in re.split(r"[\s,]+", data["dns_servers"]) if s],
        }
        if data["no_gateway"]:
            kwargs["gateway"] = None
        elif data["gateway"]:
            kwargs["gateway"] = data["gateway"]
        return kwargs

    def network_kwargs(self) -> dict:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "description": data["description"] or None,
            "idempotency_key": data["idempotency_key"] or None,
        }


class ExternalNetworkForm(NetworkCreateForm):
    """Admins: an external network (floating IPs come from it), with its subnet."""

    def network_kwargs(self) -> dict:
        return {**super().network_kwargs(), "external": True}


class AllocateForm(forms.Form):
    network = forms.ChoiceField(
        choices=(), label="External network", error_messages={"required": "Choose an external network."}
    )

    def __init__(self, *args, networks=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["network"].choices = [("", "—"), *networks]


class AssociateForm(forms.Form):
    port = forms.ChoiceField(
        choices=(),
        label="Port",
        error_messages={"required": "Choose the port (instance and fixed IP) to point it at."},
    )

    def __init__(self, *args, ports=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["port"].choices = [("", "—"), *ports]


class SecurityGroupForm(forms.Form):
    name = forms.CharField(max_length=255, error_messages={"required": "Give the group a name."})
    description = forms.CharField(required=False, max_length=1024)


class RuleForm(forms.Form):
    """A rule of a security group: a port range for tcp and udp, a remote CIDR or remote group."""

    direction = forms.ChoiceField(choices=SecurityGroupRule.DIRECTIONS, initial="ingress")
    ethertype = forms.ChoiceField(choices=SecurityGroupRule.ETHERTYPES, initial="IPv4")
    protocol = forms.ChoiceField(choices=SecurityGroupRule.PROTOCOLS, initial="tcp")
    port_min = forms.IntegerField(
        required=False, min_value=0, max_value=65535, label="From port", help_text="tcp/udp; icmp: type"
    )
    port_max = forms.IntegerField(
        required=False, min_value=0, max_value=65535, label="To port", help_text="tcp/udp; icmp: code"
    )
    remote_cidr = forms.CharField(
        required=False, max_length=43, label="Remote CIDR", help_text="e.g. 0.0.0.0/0"
    )
    remote_group = forms.ChoiceField(required=False, choices=(), label="Remote group")
    description = forms.CharField(required=False, max_length=255)

    def __init__(self, *args, groups=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["remote_group"].choices = [("", "— (any, or the CIDR)"), *groups]

    def service_kwargs(self) -> dict:
        """The arguments of ``services.create_rule`` (but the group) these answers mean."""
        return {**self.cleaned_data, "remote_group": self.cleaned_data["remote_group"] or None}
