"""The stock ``openstack`` CLI (python-openstackclient from PyPI, unmodified) through a user's whole
lifecycle against a live Zenith with a real conductor and host agents, configured with the OS_*
variables the README gives."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from compute import services
from compute.models import Flavor, Image, Instance
from compute.services import hosts as compute_hosts
from identity.models import ApiToken, KeyPair
from networking.models import FloatingIP, Network, SecurityGroupRule, Subnet
from storage.models import Snapshot, StoragePool, Volume
from tests.integration.test_async_plane import wait_for
from tests.networking.conftest import make_network_host
from workers.models import Host

from .conftest import CLI_TIMEOUT, IMAGE_BYTES, OSC_PYTHON, PASSWORD, Cli, client_env, os_vars

pytestmark = [pytest.mark.openstack, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WAIT = 60.0


def wait_status(server_id: str, status: str) -> None:
    def reached():
        row = Instance.objects.filter(pk=server_id).first()
        return row is not None and row.status == status and not row.task_state

    wait_for(
        reached, lambda: f"server {server_id} {status}: {Instance.objects.filter(pk=server_id).first()}", WAIT
    )


@pytest.fixture
def member_cli(os_cloud, os_plane, live_server, tmp_path) -> Cli:
    return Cli(client_env(tmp_path, **os_vars(live_server, "alice", "alpha")), os_plane)


@pytest.fixture
def admin_cli(os_cloud, os_plane, live_server, tmp_path) -> Cli:
    admin = os_vars(live_server, "cloudadmin", settings.ZENITH_ADMIN_PROJECT)
    return Cli(client_env(tmp_path, **admin), os_plane)


def test_the_cli_lifecycle(member_cli, admin_cli, os_cloud, image_file):
    cli = member_cli
    # Identity: a token is a native API token, scoped to the project named.
    token = cli.json("token", "issue")
    assert token["project_id"] == str(os_cloud.project.pk) and token["user_id"] == str(os_cloud.member.pk)
    assert ApiToken.objects.filter(user=os_cloud.member, project=os_cloud.project, revoked_at=None).exists()
    catalog = {row["Type"]: row for row in cli.json("catalog", "list")}
    assert set(catalog) == {"identity", "compute", "image", "block-storage", "network"}
    assert [p["Name"] for p in cli.json("project", "list")] == ["alpha"]

    # Flavors: listed, shown by name (GET /flavors/m1.tiny answers 404, then the list), created by an admin.
    assert [f["Name"] for f in cli.json("flavor", "list")][:2] == ["m1.tiny", "m1.small"]
    tiny = cli.json("flavor", "show", "m1.tiny")
    assert (tiny["ram"], tiny["vcpus"], tiny["disk"]) == (512, 1, 1)
    created = admin_cli.json("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1", "os.nano")
    assert Flavor.objects.get(pk=created["id"]).ram_mb == 256
    denied = cli.run("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1", "x.nano", check=False)
    assert denied.returncode == 1 and "403" in denied.stderr

    # Images: upload a file, list, show by name.
    image = cli.json("image", "create", "--file", str(image_file), "--disk-format", "qcow2", "cirros")
    assert image["status"] == "active" and image["size"] == image_file.stat().st_size
    assert Image.objects.get(pk=image["id"]).project_id == os_cloud.project.pk
    assert "cirros" in [i["Name"] for i in cli.json("image", "list")]
    assert cli.json("image", "show", "cirros")["id"] == image["id"]
    cli.run("image", "set", "--min-ram", "64", "--property", "os_distro=cirros", "cirros")
    assert Image.objects.get(pk=image["id"]).min_ram == 64

    # Key pairs: the CLI generates the pair and imports the public key.
    private = cli.run("keypair", "create", "mykey").stdout
    assert "PRIVATE KEY" in private
    assert [k["Name"] for k in cli.json("keypair", "list")] == ["mykey"]
    assert KeyPair.objects.filter(user=os_cloud.member, name="mykey").exists()
    assert cli.json("keypair", "show", "mykey")["name"] == "mykey"

    # Servers: create and wait for ACTIVE through the real conductor and agents.
    server = cli.json(
        "server",
        "create",
        "--flavor",
        "m1.tiny",
        "--image",
        "cirros",
        "--key-name",
        "mykey",
        "--nic",
        "none",  # compute 2.37: no network (the CLI sends "auto" without --nic)
        "--property",
        "role=web",
        "--tag",  # compute 2.52: tags on create
        "web",
        "--description",  # 2.19
        "front end",
        "--wait",
        "vm-1",
    )
    assert server["status"] == "ACTIVE", server
    instance = Instance.objects.get(pk=server["id"])
    assert (instance.project_id, instance.key_name, instance.image_id) == (
        os_cloud.project.pk,
        "mykey",
        instance.image.pk,
    )
    listed = cli.json("server", "list")
    assert [(s["Name"], s["Status"], s["Image"], s["Flavor"]) for s in listed] == [
        ("vm-1", "ACTIVE", "cirros", "m1.tiny")
    ]
    shown = cli.json("server", "show", "vm-1")
    assert (shown["id"], shown["status"], shown["key_name"]) == (server["id"], "ACTIVE", "mykey")
    # Compute 2.47 and later embed the flavor; 2.9 and 2.26 add locked and tags.
    assert (shown["flavor"]["original_name"], shown["locked"], shown["tags"]) == ("m1.tiny", False, ["web"])
    assert shown["description"] == "front end"

    # Tags and the description: set/unset (PUT /servers/{id}/tags/{tag}, DELETE ..., PUT /servers/{id}).
    cli.run("server", "set", "--tag", "blue", "--description", "the web tier", "vm-1")
    cli.run("server", "unset", "--tag", "web", "vm-1")
    instance = Instance.objects.get(pk=server["id"])
    assert (instance.tags, instance.description) == (["blue"], "the web tier")
    assert [s["Name"] for s in cli.json("server", "list", "--tags", "blue")] == ["vm-1"]
    assert cli.json("server", "list", "--not-tags", "blue") == []

    # Server metadata: set merges, unset removes (POST and DELETE /servers/{id}/metadata).
    cli.run("server", "set", "--property", "tier=front", "vm-1")
    cli.run("server", "unset", "--property", "role", "vm-1")
    assert Instance.objects.get(pk=server["id"]).metadata == {"tier": "front"}
    filtered = cli.json(
        "server", "list", "--status", "ACTIVE", "--name", "vm", "--flavor", "m1.tiny", "--image", "cirros"
    )
    assert [s["Name"] for s in filtered] == ["vm-1"]
    everyone = admin_cli.json("server", "list", "--all-projects", "--long")
    assert [(s["Name"], s["Project ID"], s["Host Status"], s["Properties"]) for s in everyone] == [
        ("vm-1", str(os_cloud.project.pk), "UP", {"tier": "front"})
    ]

    cli.run("server", "reboot", "--wait", "vm-1")
    assert Instance.objects.get(pk=server["id"]).status == "ACTIVE"
    cli.run("server", "stop", "vm-1")
    wait_status(server["id"], "SHUTOFF")
    cli.run("server", "start", "vm-1")
    wait_status(server["id"], "ACTIVE")
    cli.run("server", "lock", "vm-1")
    refused = cli.run("server", "stop", "vm-1", check=False)
    assert refused.returncode == 1 and "is locked" in refused.stderr
    cli.run("server", "unlock", "vm-1")
    events = [e["Action"] for e in cli.json("server", "event", "list", "vm-1")]
    assert events[:3] == ["unlock", "lock", "start"] and events[-1] == "create"
    console = cli.run("console", "log", "show", "vm-1")
    assert console.returncode == 0  # a simulated host has no guest, so no output

    # Admin views: hypervisors, quotas.
    hypervisors = {h["Hypervisor Hostname"]: h for h in admin_cli.json("hypervisor", "list")}
    assert set(hypervisors) >= {"os-host-a", "os-host-b"} and hypervisors["os-host-a"]["State"] == "up"
    assert cli.run("hypervisor", "list", check=False).returncode == 1  # members see no hosts (403)
    absolute = {row["Name"]: row["Value"] for row in cli.json("limits", "show", "--absolute")}
    assert (absolute["instances_used"], absolute["instances"]) == (1, 10)
    quotas = {row["Resource"]: row["Limit"] for row in cli.json("quota", "show")}
    assert (quotas["instances"], quotas["cores"], quotas["ram"]) == (10, 20, 51200)

    # Delete and wait until the server answers 404.
    cli.run("server", "delete", "--wait", "vm-1")
    assert Instance.objects.get(pk=server["id"]).vm_state == Instance.DELETED
    assert cli.json("server", "list") == []
    cli.run("keypair", "delete", "mykey")
    assert cli.json("keypair", "list") == []

    # Revocation: the token the CLI issued stops working.
    raw = cli.value("token", "issue", "-c", "id")
    cli.run("token", "revoke", raw)
    assert ApiToken.objects.get(
        digest=__import__("identity.services", fromlist=["x"]).token_digest(raw)
    ).revoked_at


def run_sdk(cli: Cli, image_file, *args: str) -> dict:
    script = Path(__file__).with_name("sdk_lifecycle.py")
    proc = subprocess.run(
        [str(OSC_PYTHON), str(script), str(image_file), *args],
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT * 2,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"the openstacksdk lifecycle exited {proc.returncode}:\n{proc.stderr}\n{cli.plane.logs()}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_sdk_lifecycle(seen: dict, project) -> None:
    assert seen["token"] and seen["project_id"] == str(project.pk)
    assert seen["flavors"][:2] == ["m1.tiny", "m1.small"]
    assert seen["image"] == {"status": "active", "size": len(IMAGE_BYTES)}
    assert seen["private_key"] and seen["keypairs"] == ["sdk-key"]
    assert seen["rebooting"] in ("HARD_REBOOT", "ACTIVE")  # ACTIVE when the host was done already
    assert (seen["active"], seen["rebooted"], seen["stopped"], seen["started"]) == (
        "ACTIVE",
        "ACTIVE",
        "SHUTOFF",
        "ACTIVE",
    )
    assert seen["listed"] == ["sdk-vm"] and seen["after_delete"] == []
    assert (seen["compute_max"], seen["flavor_name"]) == ("2.53", "m1.tiny")
    assert seen["metadata"] == {"tier": "front"} and seen["tags"] == ["sdk"]
    assert seen["quota_instances"] == 10 and seen["find_missing"]
    assert "sdk-image" not in seen["images_after"]
    assert seen["volume"] == {"status": "available", "size": 1, "name": "sdk-vol", "bootable": False}
    assert (seen["volume_max"], seen["volumes_after"]) == ("3.0", [])


def test_the_sdk_lifecycle(member_cli, os_cloud, image_file):
    """The same flow through openstacksdk, configured by the OS_* variables."""
    check_sdk_lifecycle(run_sdk(member_cli, image_file), os_cloud.project)


README_CLOUDS_YAML = re.compile(r"```yaml\n(clouds:\n.*?)```", re.S)


def test_a_clouds_yaml_as_the_readme_writes_it(os_cloud, os_plane, live_server, tmp_path, image_file):
    """The README's clouds.yaml, with this server's URL and the test user, in ~/.config/openstack/:
    the CLI and openstacksdk both find it by ``OS_CLOUD``."""
    readme = (Path(settings.BASE_DIR) / "README.md").read_text()
    match = README_CLOUDS_YAML.search(readme)
    assert match, "README.md has no clouds.yaml example"
    config = yaml.safe_load(match.group(1))
    ((name, entry),) = config["clouds"].items()
    assert entry["auth"]["auth_url"].endswith("/identity")
    entry["auth"].update(
        auth_url=f"{live_server.url}/identity", username="alice", password=PASSWORD, project_name="alpha"
    )
    folder = tmp_path / ".config" / "openstack"
    folder.mkdir(parents=True)
    (folder / "clouds.yaml").write_text(yaml.safe_dump(config))
    cli = Cli(client_env(tmp_path, OS_CLOUD=name), os_plane)

    assert cli.json("token", "issue")["project_id"] == str(os_cloud.project.pk)
    assert "m1.tiny" in [f["Name"] for f in cli.json("flavor", "list")]
    assert cli.json("server", "list") == []
    check_sdk_lifecycle(run_sdk(Cli(client_env(tmp_path), os_plane), image_file, name), os_cloud.project)


def wait_volume(volume_id: str, status: str, cli: Cli) -> Volume:
    def reached():
        row = Volume.objects.filter(pk=volume_id).first()
        return row if row is not None and row.display_status == status else None

    return wait_for(
        reached,
        lambda: f"volume {status}: {Volume.objects.filter(pk=volume_id).first()!r}\n{cli.plane.logs()}",
        WAIT,
    )


def test_the_cli_volume_lifecycle(member_cli, os_cloud):
    """Block storage through the CLI: volumes and snapshots on the agents' storage pools, and a volume
    attached to and detached from a running server (``server add volume`` / ``server remove volume``)."""
    cli = member_cli
    admin = os_cloud.ctx(os_cloud.admin)
    ctx = os_cloud.ctx(os_cloud.member)
    image = services.create_image(ctx, name="zenith-demo", disk_format="qcow2")
    services.upload_image_data(ctx, image, [IMAGE_BYTES])
    wait_for(
        lambda: StoragePool.objects.filter(host__name__in=("os-host-a", "os-host-b")).count() == 2, "pools"
    )
    server = cli.json(
        "server", "create", "--flavor", "m1.tiny", "--image", "zenith-demo", "--nic", "none", "--wait", "vm-v"
    )
    assert server["status"] == "ACTIVE", server
    # A pool reaches its own host only: keep the volume on the server's host.
    here = Instance.objects.select_related("host").get(pk=server["id"]).host
    other = Host.objects.exclude(pk=here.pk).get(name__in=("os-host-a", "os-host-b"))
    compute_hosts.disable_host(admin, other, "volume test")
    try:
        volume = cli.json("volume", "create", "--size", "1", "vol-1")
        assert (volume["size"], volume["name"], volume["status"]) == (1, "vol-1", "creating")
    finally:
        compute_hosts.enable_host(admin, other)
    row = wait_volume(volume["id"], "available", cli)
    assert row.pool.host_id == here.pk and row.project_id == os_cloud.project.pk

    listed = cli.json("volume", "list")
    assert [(v["Name"], v["Status"], v["Size"]) for v in listed] == [("vol-1", "available", 1)]
    shown = cli.json("volume", "show", "vol-1")  # the SDK parses bootable "false"
    assert (shown["id"], shown["bootable"], shown["type"]) == (
        volume["id"],
        False,
        "default",
    )  # the SDK parses "false"
    cli.run("volume", "set", "--name", "vol-a", "--description", "data", "vol-1")
    assert (Volume.objects.get(pk=volume["id"]).name, Volume.objects.get(pk=volume["id"]).description) == (
        "vol-a",
        "data",
    )

    # Snapshots: created on the storage host, listed, deleted.
    snap = cli.json("volume", "snapshot", "create", "--volume", "vol-a", "snap-1")
    assert snap["volume_id"] == volume["id"]
    wait_for(lambda: Snapshot.objects.get(pk=snap["id"]).display_status == "available", "the snapshot", WAIT)
    assert [(s["Name"], s["Status"]) for s in cli.json("volume", "snapshot", "list")] == [
        ("snap-1", "available")
    ]
    cli.run("volume", "snapshot", "delete", "snap-1")
    wait_for(
        lambda: Snapshot.objects.get(pk=snap["id"]).status == Snapshot.DELETED, "the snapshot gone", WAIT
    )
    assert cli.json("volume", "snapshot", "list") == []

    # Attach to the running server, and detach.
    cli.run("server", "add", "volume", "vm-v", "vol-a")
    wait_volume(volume["id"], "in-use", cli)
    attachments = cli.json("volume", "show", "vol-a")["attachments"]
    assert [(a["server_id"], a["device"]) for a in attachments] == [(server["id"], "/dev/vdb")]
    cli.run("server", "remove", "volume", "vm-v", "vol-a")
    wait_volume(volume["id"], "available", cli)

    cli.run("volume", "delete", "vol-a")
    wait_for(lambda: Volume.objects.get(pk=volume["id"]).status == Volume.DELETED, "the volume deleted", WAIT)
    assert cli.json("volume", "list") == []
    cli.run("server", "delete", "--wait", "vm-v")


def test_the_cli_network_lifecycle(member_cli, admin_cli, os_cloud):
    """Networking through the CLI: a network and its subnet, security groups and rules, an external
    network made by the admin and a floating IP from it, quota show. The networks are placed on a
    host with the network role (registered here: the agents of this plane serve compute and
    storage; no agent beats for it, so each step that sends it work gives it a heartbeat first), so
    they stay BUILD; what is checked is what the API shows and the database holds."""
    cli = member_cli
    host = make_network_host("os-net")
    net = cli.json("network", "create", "net-1")
    assert (net["name"], net["status"], net["admin_state_up"], net["router:external"]) == (
        "net-1",
        "BUILD",
        True,
        False,
    )
    row = Network.objects.get(pk=net["id"])
    assert (row.project_id, row.host_id, row.external) == (os_cloud.project.pk, host.pk, False)
    assert [(n["Name"], n["ID"]) for n in cli.json("network", "list")] == [("net-1", net["id"])]
    sub = cli.json(
        "subnet",
        "create",
        "--network",
        "net-1",
        "--subnet-range",
        "10.0.0.0/24",
        "--dns-nameserver",
        "192.0.2.53",
        "sub-1",
    )
    assert (sub["cidr"], sub["gateway_ip"], sub["network_id"]) == ("10.0.0.0/24", "10.0.0.1", net["id"])
    assert Subnet.objects.get(pk=sub["id"]).dns_servers == ["192.0.2.53"]
    assert [s["Name"] for s in cli.json("subnet", "list")] == ["sub-1"]
    assert cli.json("network", "show", "net-1")["subnets"] == [sub["id"]]

    group = cli.json("security", "group", "create", "--description", "web tier", "sg-1")
    assert (group["name"], group["description"]) == ("sg-1", "web tier")
    rule = cli.json("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22", "sg-1")
    assert (rule["protocol"], rule["port_range_min"], rule["port_range_max"]) == ("tcp", 22, 22)
    stored = SecurityGroupRule.objects.get(pk=rule["id"])
    assert (stored.group_id.hex, stored.direction, stored.remote_cidr) == (
        group["id"].replace("-", ""),
        "ingress",
        "0.0.0.0/0",
    )
    assert sorted(g["Name"] for g in cli.json("security", "group", "list")) == ["default", "sg-1"]

    # Floating IPs come from an external network, which only an admin may make.
    denied = cli.run("network", "create", "--external", "nope", check=False)
    assert denied.returncode == 1 and "403" in denied.stderr, denied.stderr
    make_network_host("os-net")
    public = admin_cli.json("network", "create", "--external", "public")
    assert public["router:external"] is True
    admin_cli.run("subnet", "create", "--network", "public", "--subnet-range", "203.0.113.0/28", "pub-sub")
    fip = cli.json("floating", "ip", "create", "public")
    assert fip["floating_ip_address"].startswith("203.0.113.") and fip["floating_network_id"] == public["id"]
    held = FloatingIP.objects.get(pk=fip["id"])
    assert (held.project_id, held.address, held.status) == (
        os_cloud.project.pk,
        fip["floating_ip_address"],
        "DOWN",
    )
    assert [f["Floating IP Address"] for f in cli.json("floating", "ip", "list")] == [
        fip["floating_ip_address"]
    ]

    quota = {row["Resource"]: row["Limit"] for row in cli.json("quota", "show")}
    assert (quota["networks"], quota["ports"], quota["floating_ips"], quota["subnets"]) == (10, 50, 10, -1)

    cli.run("floating", "ip", "delete", fip["floating_ip_address"])
    assert FloatingIP.objects.get(pk=fip["id"]).status == FloatingIP.DELETED
    cli.run("security", "group", "delete", "sg-1")
    cli.run("subnet", "delete", "sub-1")
    assert not Subnet.objects.filter(pk=sub["id"]).exists()
    make_network_host("os-net")
    cli.run("network", "delete", "net-1")
    assert Network.objects.get(pk=net["id"]).busy == Network.DELETING
