"""Compute v2.1 (Nova) at ``/compute/v2.1``: servers (list, detail, create, delete, actions, console
output, action log, volume attachments), flavors (with extra specs), key pairs, hypervisors, quota
sets and limits.

One module per resource. Each view translates the request, calls ``compute.services`` or
``identity.services`` with the request's Context, and renders Nova's shape for the request's
microversion (2.1 to ``COMPUTE_MICROVERSIONS.maximum``, echoed in every response). The changes up
to that maximum that touch what is served here, each rendered at and after its version:

- 2.2 key pairs have a ``type``; 2.10 admins list another user's (``user_id``); 2.35 pages of them.
- 2.3 admins see more ``OS-EXT-SRV-ATTR:*`` fields; 2.9 ``locked``; 2.16 ``host_status`` (admins);
  2.19 ``description`` (and ``PUT /servers/{id}`` changing it); 2.26 ``tags``, their endpoints
  and the ``tags``/``tags-any``/``not-tags``/``not-tags-any`` list filters; 2.52 tags on create;
  2.47 the server's flavor embedded (without its id).
- 2.28 a hypervisor's ``cpu_info`` is an object; 2.33 pages of hypervisors; 2.53 hypervisor and
  service ids are UUIDs (Zenith's always are), ``servers`` only with ``with_servers``.
- 2.36 quota sets and limits drop the network proxies' fields; 2.39 limits drop ``maxImageMeta``.
- 2.37 ``networks`` may be ``auto`` or ``none``; 2.38 an unknown ``status`` filter is a 400.
- 2.21 the action log of a deleted server stays readable.

Zenith has no networking service yet: servers have no addresses, and a request naming networks or
security groups gets the service's 400.
"""

from __future__ import annotations

from django.urls import re_path

from identity.openstack.http import NOVA, endpoint, not_found

from .common import version
from .flavors import (
    create_flavor,
    delete_extra_spec,
    delete_flavor,
    extra_spec,
    extra_specs,
    flavor_access,
    flavor_action,
    list_flavors,
    list_flavors_detail,
    set_extra_spec,
    set_extra_specs,
    show_flavor,
)
from .hypervisors import list_hypervisors, list_hypervisors_detail, show_hypervisor
from .keypairs import create_keypair, delete_keypair, list_keypairs, show_keypair
from .quotas import delete_quota_set, limits, quota_defaults, quota_set, quota_set_detail, update_quota_set
from .servers import (
    add_server_tag,
    create_server,
    delete_server,
    delete_server_metadata_item,
    delete_server_tag,
    delete_server_tags,
    instance_actions,
    list_servers,
    list_servers_detail,
    merge_server_metadata,
    replace_server_metadata,
    replace_server_tags,
    server_action,
    server_metadata,
    server_metadata_item,
    server_tag,
    server_tags,
    set_server_metadata_item,
    show_server,
    update_server,
)
from .volumes import attach_volume, detach_volume, list_volume_attachments, show_volume_attachment

ID = r"(?P<{}>[^/]+)"
SERVER = ID.format("server_id")
FLAVOR = ID.format("flavor_id")

urlpatterns = [
    re_path(r"^$", endpoint(NOVA, auth=False, get=version)),
    re_path(r"^servers$", endpoint(NOVA, get=list_servers, post=create_server)),
    re_path(r"^servers/detail$", endpoint(NOVA, get=list_servers_detail)),
    re_path(rf"^servers/{SERVER}$", endpoint(NOVA, get=show_server, put=update_server, delete=delete_server)),
    re_path(rf"^servers/{SERVER}/action$", endpoint(NOVA, post=server_action)),
    re_path(
        rf"^servers/{SERVER}/os-volume_attachments$",
        endpoint(NOVA, get=list_volume_attachments, post=attach_volume),
    ),
    re_path(
        rf"^servers/{SERVER}/os-volume_attachments/{ID.format('volume_id')}$",
        endpoint(NOVA, get=show_volume_attachment, delete=detach_volume),
    ),
    re_path(rf"^servers/{SERVER}/os-instance-actions$", endpoint(NOVA, get=instance_actions)),
    re_path(
        rf"^servers/{SERVER}/metadata$",
        endpoint(NOVA, get=server_metadata, post=merge_server_metadata, put=replace_server_metadata),
    ),
    re_path(
        rf"^servers/{SERVER}/metadata/{ID.format('key')}$",
        endpoint(
            NOVA, get=server_metadata_item, put=set_server_metadata_item, delete=delete_server_metadata_item
        ),
    ),
    re_path(
        rf"^servers/{SERVER}/tags$",
        endpoint(NOVA, get=server_tags, put=replace_server_tags, delete=delete_server_tags),
    ),
    re_path(
        rf"^servers/{SERVER}/tags/{ID.format('tag')}$",
        endpoint(NOVA, get=server_tag, put=add_server_tag, delete=delete_server_tag),
    ),
    re_path(r"^flavors$", endpoint(NOVA, get=list_flavors, post=create_flavor)),
    re_path(r"^flavors/detail$", endpoint(NOVA, get=list_flavors_detail)),
    re_path(rf"^flavors/{FLAVOR}$", endpoint(NOVA, get=show_flavor, delete=delete_flavor)),
    re_path(rf"^flavors/{FLAVOR}/os-extra_specs$", endpoint(NOVA, get=extra_specs, post=set_extra_specs)),
    re_path(rf"^flavors/{FLAVOR}/os-flavor-access$", endpoint(NOVA, get=flavor_access)),
    re_path(rf"^flavors/{FLAVOR}/action$", endpoint(NOVA, post=flavor_action)),
    re_path(
        rf"^flavors/{FLAVOR}/os-extra_specs/{ID.format('key')}$",
        endpoint(NOVA, get=extra_spec, put=set_extra_spec, delete=delete_extra_spec),
    ),
    re_path(r"^os-keypairs$", endpoint(NOVA, get=list_keypairs, post=create_keypair)),
    re_path(rf"^os-keypairs/{ID.format('name')}$", endpoint(NOVA, get=show_keypair, delete=delete_keypair)),
    re_path(r"^os-hypervisors$", endpoint(NOVA, get=list_hypervisors)),
    re_path(r"^os-hypervisors/detail$", endpoint(NOVA, get=list_hypervisors_detail)),
    re_path(rf"^os-hypervisors/{ID.format('host_id')}$", endpoint(NOVA, get=show_hypervisor)),
    re_path(
        rf"^os-quota-sets/{ID.format('project_id')}$",
        endpoint(NOVA, get=quota_set, put=update_quota_set, delete=delete_quota_set),
    ),
    re_path(rf"^os-quota-sets/{ID.format('project_id')}/detail$", endpoint(NOVA, get=quota_set_detail)),
    re_path(rf"^os-quota-sets/{ID.format('project_id')}/defaults$", endpoint(NOVA, get=quota_defaults)),
    re_path(r"^limits$", endpoint(NOVA, get=limits)),
    re_path(r"^.*$", not_found(NOVA)),
]
