"""Dashboard: networks (the table, create with a first subnet, the detail page with its subnets'
used and free addresses and its ports, sync, delete), floating IPs (allocate from an external
network, associate with a port chosen from the project's, disassociate, release), security groups
(create, delete, the rule editor), and the admins' panels (all networks, external networks, network
hosts with the VLAN range's use and what each host applied).

Views parse, call networking.services through ``call_service`` and render: a refusal becomes an
error on the field it names, on the form, or a message, never a 500.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from identity import dashboard

from . import queries, services
from .forms import (
    AllocateForm,
    AssociateForm,
    ExternalNetworkForm,
    NetworkCreateForm,
    RuleForm,
    SecurityGroupForm,
    field_of,
)
from .models import FloatingIP, Network
from .tables import (
    AdminNetworkTable,
    FloatingIPTable,
    NetworkHostTable,
    NetworkTable,
    SecurityGroupTable,
    network_buttons,
    network_status,
    port_status,
)


def _back(request, network: Network | None = None):
    detail = ("networking:network", network.pk) if network is not None else None
    return dashboard.redirect_back(
        request, default="networking:networks", admin="networking:admin-networks", detail=detail
    )


def _create_network(ctx, form: NetworkCreateForm):
    """The network and its first subnet in one transaction: a subnet refused leaves no network (the
    network's create, sent on commit, carries the subnet to its host)."""
    with transaction.atomic():
        network, created = services.create_network(ctx, **form.network_kwargs())
        if created:
            services.create_subnet(ctx, network=network, sync=False, **form.subnet_kwargs())
    return network, created


def _network_form_submitted(request, form) -> Network | None:
    if not form.is_valid():
        return None
    result = dashboard.call_service(
        request, form, lambda: _create_network(request.zenith, form), field_of=field_of
    )
    if result is None:
        return None
    network, created = result
    if created:
        messages.success(request, f"Creating network {network.name}.")
    else:
        messages.info(request, f"Network {network.name} was already created from this form.")
    return network


# --- networks -------------------------------------------------------------------------------------


@login_required
@require_GET
def networks(request):
    """The project's, the shared and the external networks: subnets, status, ports used."""
    return dashboard.table_page(
        request,
        policy="networking:network:list",
        table=lambda ctx: NetworkTable(queries.project_networks(ctx), ctx=ctx),
        template="networking/networks.html",
    )


@login_required
@require_GET
def network_row(request, pk):
    """One table row (htmx polls it while the network changes); empty once it is deleted."""
    ctx = request.zenith
    admin = request.GET.get("admin") == "1" and ctx.is_admin

    def find():
        scope = queries.all_networks(ctx) if admin else queries.project_networks(ctx)
        return scope.filter(pk=pk).first()

    return dashboard.row_page(
        request,
        policy="networking:network:list",
        find=find,
        gone=lambda: dashboard.was_deleted(ctx, Network, pk, admin=admin, status=Network.DELETED),
        table=lambda rows: (AdminNetworkTable if admin else NetworkTable)(rows, ctx=ctx),
    )


@login_required
def network_create(request):
    """A network with its first subnet (CIDR, gateway, DHCP, DNS): a refusal is shown on the field
    it names, with what was typed kept."""
    if (denied := dashboard.forbidden_unless(request, "networking:network:create")) is not None:
        return denied
    form = NetworkCreateForm(request.POST or None, initial={"dhcp": True})
    if request.method == "POST" and _network_form_submitted(request, form) is not None:
        return redirect("networking:networks")
    context = {"form": form, "title": "Create network", "submit": "Create network", "form_id": "network-form"}
    return render(
        request, "networking/_form_page.html", context, status=400 if request.method == "POST" else 200
    )


@login_required
@require_GET
def network_detail(request, pk):
    """Overview, subnets (used and free addresses) and ports."""
    ctx = request.zenith
    network, refused = dashboard.permitted_object(
        request, "networking:network:show", lambda ctx: queries.find_network(ctx, pk)
    )
    if refused is not None:
        return refused
    ports = queries.network_ports(ctx, network)
    for port in ports:
        port.status_badge = port_status(port)
    context = {
        "network": network,
        "status": network_status(network),
        "buttons": network_buttons(ctx, network),
        "subnets": queries.network_subnets(network),
        "ports": ports,
        "back": "detail",
    }
    return render(request, "networking/network_detail.html", context)


def _network_action(request, pk, *, policy, act, message, stays: bool):
    """A bare POST on a network (sync, delete): back to its page while it ``stays``, else the list."""
    ctx = request.zenith
    network, refused = dashboard.permitted_object(request, policy, lambda ctx: queries.find_network(ctx, pk))
    if refused is not None:
        return refused
    dashboard.call_service(request, None, lambda: act(ctx, network), message.format(name=network.name))
    return _back(request, network if stays else None)


@login_required
@require_POST
def network_delete(request, pk):
    return _network_action(
        request,
        pk,
        policy="networking:network:delete",
        act=services.delete_network,
        message="Deleting network {name}.",
        stays=False,
    )


@login_required
@require_POST
def network_sync(request, pk):
    return _network_action(
        request,
        pk,
        policy="networking:network:update",
        act=services.sync_network,
        message="Applying network {name} on its host again.",
        stays=True,
    )


# --- floating IPs -----------------------------------------------------------------------------------


@login_required
def floating_ips(request):
    """The project's floating IPs, with the allocate form (an external network chosen from a list)."""
    ctx = request.zenith
    form = AllocateForm(request.POST or None, networks=queries.external_network_choices(ctx))
    if request.method == "POST":
        if (denied := dashboard.forbidden_unless(request, "networking:floating_ip:create")) is not None:
            return denied
        if form.is_valid():
            fip = dashboard.call_service(
                request,
                form,
                lambda: services.allocate_floating_ip(ctx, network=form.cleaned_data["network"]),
            )
            if fip is not None:
                messages.success(request, f"Floating IP {fip.address} allocated.")
                return redirect("networking:floating-ips")
    return _refused_on_post(
        request,
        dashboard.table_page(
            request,
            policy="networking:floating_ip:list",
            table=lambda ctx: FloatingIPTable(queries.project_floating_ips(ctx), ctx=ctx),
            template="networking/floating_ips.html",
            context={"form": form},
        ),
    )


def _refused_on_post(request, response):
    """A list page drawn again after its form was refused answers 400 (the errors are on the form)."""
    if request.method == "POST" and response.status_code == 200:
        response.status_code = 400
    return response


@login_required
@require_GET
def floating_ip_row(request, pk):
    ctx = request.zenith
    return dashboard.row_page(
        request,
        policy="networking:floating_ip:list",
        find=lambda: queries.find_floating_ip(ctx, pk),
        gone=lambda: dashboard.was_deleted(ctx, FloatingIP, pk, status=FloatingIP.DELETED),
        table=lambda rows: FloatingIPTable(rows, ctx=ctx),
    )


@login_required
def floating_ip_associate(request, pk):
    """Point a floating IP at one of the project's ports (its instance and fixed IP shown)."""
    ctx = request.zenith
    fip, refused = dashboard.permitted_object(
        request, "networking:floating_ip:associate", lambda ctx: queries.find_floating_ip(ctx, pk)
    )
    if refused is not None:
        return refused
    form = AssociateForm(request.POST or None, ports=queries.port_choices(ctx))
    if request.method == "POST" and form.is_valid():
        done = dashboard.call_service(
            request,
            form,
            lambda: services.associate(ctx, fip, form.cleaned_data["port"]),
            f"Associating floating IP {fip.address}.",
        )
        if done is not None:
            return redirect("networking:floating-ips")
    context = {
        "form": form,
        "title": f"Associate floating IP {fip.address}",
        "submit": "Associate",
        "form_id": "associate-form",
        "cancel": "networking:floating-ips",
    }
    return render(
        request, "networking/_form_page.html", context, status=400 if request.method == "POST" else 200
    )


def _floating_action(request, pk, policy, act, message):
    ctx = request.zenith
    fip, refused = dashboard.permitted_object(request, policy, lambda ctx: queries.find_floating_ip(ctx, pk))
    if refused is not None:
        return refused
    dashboard.call_service(request, None, lambda: act(ctx, fip), message.format(address=fip.address))
    return redirect("networking:floating-ips")


@login_required
@require_POST
def floating_ip_disassociate(request, pk):
    return _floating_action(
        request,
        pk,
        "networking:floating_ip:disassociate",
        services.disassociate,
        "Disassociating floating IP {address}.",
    )


@login_required
@require_POST
def floating_ip_release(request, pk):
    return _floating_action(
        request, pk, "networking:floating_ip:delete", services.release_floating_ip, "Released {address}."
    )


# --- security groups --------------------------------------------------------------------------------


@login_required
def security_groups(request):
    """The project's groups (``default`` made on first use, as the API's list does), with the create
    form beside them."""
    ctx = request.zenith
    form = SecurityGroupForm(request.POST or None)
    if request.method == "POST":
        if (denied := dashboard.forbidden_unless(request, "networking:security_group:create")) is not None:
            return denied
        if form.is_valid():
            group = dashboard.call_service(
                request,
                form,
                lambda: services.create_security_group(ctx, **form.cleaned_data),
                field_of=field_of,
            )
            if group is not None:
                messages.success(request, f"Security group {group.name} created.")
                return redirect("networking:security-group", pk=group.pk)
    elif ctx.project is not None and ctx.can("networking:security_group:list"):
        services.ensure_default_security_group(ctx)
    return _refused_on_post(
        request,
        dashboard.table_page(
            request,
            policy="networking:security_group:list",
            table=lambda ctx: SecurityGroupTable(queries.project_groups(ctx), ctx=ctx),
            template="networking/security_groups.html",
            context={"form": form},
        ),
    )


def _rule_form(ctx, data=None) -> RuleForm:
    return RuleForm(data, groups=queries.group_choices(ctx))


def _group_page(request, group, form, status=200):
    context = {"group": group, "rules": queries.group_rules(group), "form": form}
    return render(request, "networking/security_group_detail.html", context, status=status)


@login_required
@require_GET
def security_group_detail(request, pk):
    """The group's rules, with the rule editor (add one; delete each)."""
    group, refused = dashboard.permitted_object(
        request, "networking:security_group:show", lambda ctx: queries.find_group(ctx, pk)
    )
    if refused is not None:
        return refused
    return _group_page(request, group, _rule_form(request.zenith))


@login_required
@require_POST
def security_group_delete(request, pk):
    ctx = request.zenith
    group, refused = dashboard.permitted_object(
        request, "networking:security_group:delete", lambda ctx: queries.find_group(ctx, pk)
    )
    if refused is not None:
        return refused
    dashboard.call_service(
        request,
        None,
        lambda: services.delete_security_group(ctx, group),
        f"Security group {group.name} deleted.",
    )
    return redirect("networking:security-groups")


@login_required
@require_POST
def rule_create(request, pk):
    """Add a rule: a refusal is shown on the field it names, with what was typed kept."""
    ctx = request.zenith
    group, refused = dashboard.permitted_object(
        request, "networking:security_group_rule:create", lambda ctx: queries.find_group(ctx, pk)
    )
    if refused is not None:
        return refused
    form = _rule_form(ctx, request.POST)
    if form.is_valid():
        rule = dashboard.call_service(
            request,
            form,
            lambda: services.create_rule(ctx, group=group, **form.service_kwargs()),
            field_of=field_of,
        )
        if rule is not None:
            messages.success(request, f"Rule {rule} added.")
            return redirect("networking:security-group", pk=group.pk)
    return _group_page(request, group, form, status=400)


@login_required
@require_POST
def rule_delete(request, pk, rule_pk):
    ctx = request.zenith
    group, refused = dashboard.permitted_object(
        request, "networking:security_group_rule:delete", lambda ctx: queries.find_group(ctx, pk)
    )
    if refused is not None:
        return refused
    rule = queries.find_rule(ctx, group, rule_pk)
    if rule is None:
        return dashboard.not_found(request)
    dashboard.call_service(request, None, lambda: services.delete_rule(ctx, rule), f"Rule {rule} deleted.")
    return redirect("networking:security-group", pk=group.pk)


# --- admin panels ------------------------------------------------------------------------------------


@login_required
@require_GET
def admin_networks(request):
    """Every project's networks, with their network host and VLAN (cloud admins)."""
    return dashboard.table_page(
        request,
        policy="networking:network:show_host",
        table=lambda ctx: AdminNetworkTable(queries.all_networks(ctx), ctx=ctx),
        template="networking/admin_networks.html",
    )


@login_required
def admin_external_networks(request):
    """External networks (floating IPs come from them), with the form to create one."""
    if (denied := dashboard.forbidden_unless(request, "networking:network:create_external")) is not None:
        return denied
    form = ExternalNetworkForm(request.POST or None, initial={"dhcp": False})
    if request.method == "POST" and _network_form_submitted(request, form) is not None:
        return redirect("networking:admin-external-networks")
    return _refused_on_post(
        request,
        dashboard.table_page(
            request,
            policy="networking:network:create_external",
            table=lambda ctx: AdminNetworkTable(queries.external_networks(ctx), ctx=ctx),
            template="networking/admin_external_networks.html",
            context={"form": form},
        ),
    )


@login_required
@require_GET
def admin_hosts(request):
    """The VLAN range's use, and per network host what it last said it applied."""
    return dashboard.table_page(
        request,
        policy="networking:network:show_host",
        table=lambda ctx: NetworkHostTable(queries.network_hosts()),
        template="networking/admin_hosts.html",
        context={"vlans": services.vlan_usage()},
    )
