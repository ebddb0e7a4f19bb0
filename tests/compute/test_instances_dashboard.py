"""The instances dashboard: table, launch wizard, detail (overview, console log, action log), actions
as POSTs with CSRF, the admins' panels; every page per role, errors shown (never a 500), fixed query
counts at 1 and 20 rows."""

import re
import uuid

import pytest
from django.test import Client
from django.utils import timezone

from compute import services
from compute.models import ComputeNode, Instance
from compute.services import instances as instance_services
from identity import quotas
from identity.models import ResourceAction
from storage import services as storage_services
from storage.models import Attachment, Volume, VolumeType
from tests.conftest import token_client
from tests.factories import KeyPairFactory, grant
from tests.identity.test_query_counts import MANY, assert_fixed_queries, page_rows
from tests.storage.conftest import available, make_storage_host

from .conftest import make_flavor, make_host
from .instance_helpers import in_state, launch, make_image

pytestmark = pytest.mark.django_db

LIST = "/dashboard/compute/instances/"
LAUNCH = "/dashboard/compute/instances/launch/"
ADMIN_LIST = "/dashboard/compute/admin/instances/"
# session, user, current project, roles, the table's COUNT and rows, the project switcher's list
PAGE_QUERIES = 7
# session, user, current project, roles, the instance (with flavor, image, operation, host), its
# action log (with users), the project switcher's list
DETAIL_QUERIES = 7
# session, user, current project, roles, the instance row
ROW_QUERIES = 5
# session, user, current project, roles, flavors, images, key pairs, quota limits, usage (instances,
# cores and ram in one aggregate; key pairs; volumes, gigabytes and snapshots in one; networks, ports,
# security groups and rules, floating IPs in one), hosts that fit, the bootable volumes, the project
# switcher's list
LAUNCH_QUERIES = 15


@pytest.fixture
def setup(cloud):
    make_flavor("m1.tiny", vcpus=1, ram_mb=512, disk_gb=1)
    make_image("cirros")


@pytest.fixture
def browse(cloud):
    """``browse("member")``: a Django test client logged in as that role of the cloud fixture."""

    def login(who: str, csrf: bool = False) -> Client:
        client = Client(enforce_csrf_checks=csrf)
        client.force_login({"other": cloud.other_member}.get(who) or getattr(cloud, who))
        return client

    return login


def offered(row: str) -> list[str]:
    """The actions a row's menu offers (the menu itself is rendered once per page)."""
    match = re.search(r'data-actions="([a-z_ ]*)"', row)
    return match.group(1).split() if match else []


def row_of(html: str, name: str) -> str:
    match = re.search(rf'<tr [^>]*data-name="{re.escape(name)}".*?</tr>', html, re.S)
    assert match, f"no row {name}"
    return match.group(0)


def active(cloud, name="web-1", **kwargs) -> Instance:
    return in_state(launch(cloud, name=name, **kwargs), "active")


# --- the table ---------------------------------------------------------------------------------------


class TestInstancesPage:
    def test_member_sees_rows_status_task_flavor_and_actions(self, setup, cloud, browse):
        building = launch(cloud, name="new-one", flavor=make_flavor("m1.small", vcpus=2, ram_mb=2048))
        running = active(cloud, "web-1")
        html = browse("member").get(LIST).content.decode()
        assert 'href="/dashboard/compute/instances/launch/"' in html
        row = row_of(html, "new-one")
        assert 'badge text-bg-info instance-status">BUILD<' in row
        assert "scheduling" in row and 'class="progress instance-progress"' in row
        assert f'hx-get="{LIST}{building.pk}/row/"' in row and 'hx-trigger="every 2s"' in row
        assert "m1.small" in row and "2 vCPU · 2048 MB" in row
        row = row_of(html, "web-1")
        assert 'instance-status">ACTIVE<' in row and "hx-trigger" not in row
        assert ">None<" not in row and 'title="no task running">—<' in row
        assert re.search(r'<span title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC">', row)  # the age's moment
        assert f'href="/dashboard/compute/instances/{running.pk}/"' in row
        assert set(offered(row)) == {
            "stop",
            "reboot",
            "reboot_hard",
            "pause",
            "suspend",
            "snapshot",
            "rebuild",
            "delete",
            "lock",
        }
        # The menu, its confirmations and its one form are on the page once, not in each row.
        assert "csrfmiddlewaretoken" not in row and "<form" not in row
        assert html.count('id="instance-action-menu"') == 1 and html.count('id="instance-action-form"') == 1
        menu = html.split('id="instance-action-menu"', 1)[1].split("</template>", 1)[0]
        assert (
            'data-confirm="Delete instance {name}?' in menu
            and 'data-confirm="Reboot instance {name}?"' in menu
        )
        assert f'data-url="{LIST}{{id}}/reboot/"' in menu

    def test_reader_sees_rows_but_no_buttons(self, setup, cloud, browse):
        active(cloud, "web-1")
        html = browse("reader").get(LIST).content.decode()
        row = row_of(html, "web-1")
        assert offered(row) == [] and "Launch instance" not in html
        assert "instance-action-menu" not in html and "instance-action-form" not in html
        assert browse("reader").get(LAUNCH).status_code == 403

    def test_other_project_and_admin_project_see_none_of_them(self, setup, cloud, browse):
        active(cloud, "web-1")
        for who in ("other", "admin"):
            html = browse(who).get(LIST).content.decode()
            assert 'data-name="web-1"' not in html and "No instances yet." in html

    def test_anonymous_is_sent_to_log_in(self, setup, client):
        response = client.get(LIST)
        assert response.status_code == 302 and response["Location"].startswith("/login/")

    def test_error_shows_the_fault(self, setup, cloud, browse):
        instance = launch(cloud, name="broken")
        Instance.objects.filter(pk=instance.pk).update(
            vm_state="error", task_state="", fault={"code": "no_valid_host", "message": "No host has room."}
        )
        row = row_of(browse("member").get(LIST).content.decode(), "broken")
        assert "ERROR" in row and "No valid host was found for flavor" in row and "delete" in offered(row)

    def test_filter_sort_and_paginate(self, setup, cloud, browse):
        quotas.set_limits(cloud.project, {"instances": -1, "cores": -1, "ram": -1})
        active(cloud, "alpha-web")
        launch(cloud, name="beta-db")
        member = browse("member")
        html = member.get(LIST, {"q": "web"}).content.decode()
        assert 'data-name="alpha-web"' in html and 'data-name="beta-db"' not in html
        html = member.get(LIST, {"status": "BUILD"}).content.decode()
        assert 'data-name="alpha-web"' not in html and 'data-name="beta-db"' in html
        html = member.get(LIST, {"sort": "name"}).content.decode()
        assert html.index('data-name="alpha-web"') < html.index('data-name="beta-db"')
        html = member.get(LIST, {"sort": "-name"}).content.decode()
        assert html.index('data-name="beta-db"') < html.index('data-name="alpha-web"')
        assert member.get(LIST, {"status": "nonsense", "sort": "nope", "page": "x"}).status_code == 200
        for n in range(30):
            launch(cloud, name=f"many-{n:02d}")
        page_two = member.get(LIST, {"page": 2})
        assert page_two.status_code == 200 and page_two.content.count(b"<tr id=") == 32 - 25

    def test_a_page_out_of_range_shows_the_last_page(self, setup, cloud, browse):
        active(cloud, "web-1")
        response = browse("member").get(LIST, {"page": "999"})
        assert response.status_code == 200 and 'data-name="web-1"' in response.content.decode()


# --- polling rows ------------------------------------------------------------------------------------


class TestRow:
    def test_transitional_row_polls_and_stable_row_stops(self, setup, cloud, browse):
        instance = launch(cloud)
        url = f"{LIST}{instance.pk}/row/"
        html = browse("member").get(url, HTTP_HX_REQUEST="true").content.decode()
        assert html.startswith("<tr ") and 'hx-trigger="every 2s"' in html and "scheduling" in html
        in_state(instance, "active")
        html = browse("member").get(url, HTTP_HX_REQUEST="true").content.decode()
        assert html.startswith("<tr ") and "hx-trigger" not in html and "ACTIVE" in html
        assert "reboot" in offered(html)

    def test_deleted_instance_answers_an_empty_row_which_removes_it(self, setup, cloud, browse):
        instance = launch(cloud)
        Instance.objects.filter(pk=instance.pk).update(vm_state="deleted", task_state="")
        response = browse("member").get(f"{LIST}{instance.pk}/row/")
        assert response.status_code == 200 and response.content == b""

    def test_other_project_gets_404(self, setup, cloud, browse):
        instance = launch(cloud)
        assert browse("other").get(f"{LIST}{instance.pk}/row/").status_code == 404
        Instance.objects.filter(pk=instance.pk).update(vm_state="deleted")
        assert browse("other").get(f"{LIST}{instance.pk}/row/").status_code == 404

    def test_admin_row_has_the_admin_columns(self, setup, cloud, browse):
        instance = launch(cloud)
        html = browse("admin").get(f"{LIST}{instance.pk}/row/?admin=1").content.decode()
        assert "alpha" in html and f"{LIST}{instance.pk}/row/?admin=1" in html


# --- the launch wizard -------------------------------------------------------------------------------


class TestLaunchWizard:
    def test_flavors_show_sizes_quota_left_and_hosts_that_fit(self, setup, cloud, browse):
        quotas.set_limits(cloud.project, {"cores": 4})
        make_flavor("m1.large", vcpus=8, ram_mb=8192, disk_gb=80)
        make_host("h1", vcpus=2, memory_mb=4096)  # x4 CPU ratio: 8 vCPUs, 4096 x1.5 MB
        make_host("h2", last_heartbeat=None)  # down: fits nothing
        html = browse("member").get(LAUNCH).content.decode()
        tiny = re.search(r'<tr data-flavor="m1.tiny".*?</tr>', html, re.S).group(0)
        assert "512 MB" in tiny and "9 instances" in tiny and "3 vCPUs" in tiny
        assert "1 host fits" in tiny and "disabled" not in tiny
        large = re.search(r'<tr data-flavor="m1.large".*?</tr>', html, re.S).group(0)
        assert "disabled" in large and "Over quota: needs 8 vCPUs, 4 left in the quota" in large
        after = re.search(r'<td class="small quota-after">.*?</td>', large, re.S).group(0)
        assert "0 vCPUs (4 short)" in after and "-4" not in after  # never a negative "left"
        assert "no host fits now" in large
        assert 'name="idempotency_key" value="' in html
        assert re.search(r'data-resource="cores" data-used="0" data-limit="4"', html)

    def test_images_say_which_flavors_are_too_small(self, setup, cloud, browse):
        make_image("big-os", min_disk=10, min_ram=1024)
        make_image("kernel", disk_format="aki")
        html = browse("member").get(LAUNCH).content.decode()
        big = re.search(r'<tr data-image="big-os".*?</tr>', html, re.S).group(0)
        assert "10 GB disk, 1024 MB RAM" in big and "m1.tiny" in big
        assert 'data-image="kernel"' not in html  # kernels and ramdisks are not bootable on their own
        cirros = re.search(r'<tr data-image="cirros".*?</tr>', html, re.S).group(0)
        assert "m1.tiny" not in cirros

    def test_launch_creates_one_instance_even_when_submitted_twice(self, setup, cloud, browse):
        KeyPairFactory(user=cloud.member, name="laptop")
        member = browse("member")
        form = member.get(LAUNCH).content.decode()
        key = re.search(r'name="idempotency_key" value="([^"]+)"', form).group(1)
        flavor = make_flavor("m1.small", vcpus=1, ram_mb=1024, disk_gb=5)
        data = {
            "name": "web-1",
            "image": "cirros",
            "flavor": str(flavor.pk),
            "key_name": "laptop",
            "user_data": "#cloud-config\n",
            "metadata": "role=web\n\nteam = blue",
            "idempotency_key": key,
        }
        first = member.post(LAUNCH, data, follow=True)
        assert first.redirect_chain == [(LIST, 302)]
        assert "Launching instance web-1." in first.content.decode()
        again = member.post(LAUNCH, data, follow=True)
        assert "was already launched from this form" in again.content.decode()
        instance = Instance.objects.get()
        assert (instance.flavor, instance.key_name, instance.metadata) == (
            flavor,
            "laptop",
            {"role": "web", "team": "blue"},
        )
        assert instance.user_data == "#cloud-config\n" and instance.idempotency_key == key

    @pytest.mark.parametrize(
        "data, error, step",
        [
            ({"image": "cirros", "flavor": "m1.tiny"}, "Give the instance a name.", "details"),
            ({"name": "x", "flavor": "m1.tiny"}, "Choose an image to boot from", "source"),
            ({"name": "x", "image": "cirros"}, "Choose a flavor (step Flavor).", "flavor"),
            (
                {"name": "x", "image": "cirros", "flavor": "nope"},
                "No flavor &#x27;nope&#x27; is available",
                None,
            ),
            (
                {"name": "x", "image": "nope", "flavor": "m1.tiny"},
                "No image &#x27;nope&#x27; is available",
                None,
            ),
            (
                {"name": "x", "image": "cirros", "flavor": "m1.tiny", "key_name": "ghost"},
                "You have no key pair named &#x27;ghost&#x27;.",
                None,
            ),
            (
                {"name": "x", "image": "cirros", "flavor": "m1.tiny", "metadata": "novalue"},
                "Metadata line 1 is not key=value.",
                "configuration",
            ),
            ({"name": "\x01", "image": "cirros", "flavor": "m1.tiny"}, "invisible or control", None),
            (
                {"name": "x", "image": "cirros", "flavor": "m1.tiny", "user_data": "x" * 70000},
                "User data is limited to 64 KiB.",
                None,
            ),
        ],
    )
    def test_errors_are_shown_on_the_form(self, setup, cloud, browse, data, error, step):
        response = browse("member").post(LAUNCH, data)
        assert response.status_code == 400
        html = response.content.decode()
        assert error in html
        if step:
            assert re.search(rf'class="nav-link active" id="step-{step}-tab"', html)
        assert 'value="x"' in html or "name" not in data or data["name"] != "x"  # input kept
        assert not Instance.objects.exists()

    def test_too_small_flavor_and_quota_are_refused_with_the_reason(self, setup, cloud, browse):
        make_image("big-os", min_disk=10)
        member = browse("member")
        html = member.post(LAUNCH, {"name": "x", "image": "big-os", "flavor": "m1.tiny"}).content.decode()
        assert "needs a root disk of at least 10 GB; flavor m1.tiny has 1 GB" in html
        quotas.set_limits(cloud.project, {"instances": 0})
        html = member.post(LAUNCH, {"name": "x", "image": "cirros", "flavor": "m1.tiny"}).content.decode()
        assert "Quota exceeded for instances (limit 0, in use 0, requested 1)." in html
        assert not Instance.objects.exists()

    def test_reader_and_other_roles(self, setup, cloud, browse):
        data = {"name": "x", "image": "cirros", "flavor": "m1.tiny"}
        assert browse("reader").post(LAUNCH, data).status_code == 403
        assert browse("other").post(LAUNCH, data).status_code == 302  # public flavor and image: fine
        assert Instance.objects.get().project == cloud.other_project

    def test_csrf_is_required(self, setup, cloud, browse):
        data = {"name": "x", "image": "cirros", "flavor": "m1.tiny"}
        assert browse("member", csrf=True).post(LAUNCH, data).status_code == 403
        assert not Instance.objects.exists()


class TestLaunchBootSource:
    """The Source step: boot from an image, an existing bootable volume, or a new volume made from an
    image (its size and delete-on-terminate); bad combinations are form errors, never a 500."""

    @pytest.fixture
    def storage(self, setup, cloud):
        VolumeType.objects.get_or_create(name="default", defaults={"backend": "local", "is_default": True})
        make_storage_host("store-1")
        boot = available(cloud, "boot-disk", size=2)
        Volume.objects.filter(pk=boot.pk).update(bootable=True)
        available(cloud, "scratch")  # blank: not bootable, not offered
        return Volume.objects.get(pk=boot.pk)

    def test_the_wizard_offers_the_three_sources_and_the_bootable_volumes(self, storage, browse):
        html = browse("member").get(LAUNCH).content.decode()
        for value in ("image", "volume", "image_to_volume"):
            assert f'name="source" value="{value}"' in html
        assert re.search(r'name="source" value="image" id="source-image" checked', html)
        volumes = re.search(r'<table [^>]*id="launch-volumes".*?</table>', html, re.S).group(0)
        assert f'value="{storage.pk}"' in volumes and "boot-disk" in volumes and "2 GiB" in volumes
        assert "scratch" not in volumes
        assert 'name="volume_size"' in html and 'name="delete_on_termination"' in html

    def test_boot_from_an_existing_volume(self, storage, cloud, browse):
        data = {"name": "from-vol", "flavor": "m1.tiny", "source": "volume", "boot_volume": str(storage.pk)}
        data["delete_on_termination"] = "on"
        data["image"] = "cirros"  # left checked in the hidden image table: not used
        response = browse("member").post(LAUNCH, data, follow=True)
        assert response.redirect_chain == [(LIST, 302)], response.content.decode()[:3000]
        instance = Instance.objects.get(name="from-vol")
        root = Attachment.objects.get(instance_id=instance.pk, device="/dev/vda")
        assert root.volume_id == storage.pk and root.delete_on_termination
        assert instance.disk_gb == 0 and instance.image_id is None

    def test_boot_from_an_image_to_a_new_volume(self, storage, cloud, browse):
        data = {"name": "bfv", "flavor": "m1.tiny", "source": "image_to_volume", "image": "cirros"}
        data["volume_size"] = "3"
        response = browse("member").post(LAUNCH, data, follow=True)
        assert response.redirect_chain == [(LIST, 302)], response.content.decode()[:3000]
        instance = Instance.objects.get(name="bfv")
        root = Attachment.objects.select_related("volume").get(instance_id=instance.pk, device="/dev/vda")
        assert (root.volume.size, root.volume.source, root.volume.name) == (3, "image", "bfv-root")
        assert root.volume.source_image_id == instance.image_id and not root.delete_on_termination
        assert instance.disk_gb == 0

    @pytest.mark.parametrize(
        "data, error",
        [
            ({"source": "volume"}, "Choose a volume to boot from (step Source)."),
            (
                {"source": "volume", "boot_volume": "BOOT", "volume_size": "5"},
                "An existing volume keeps its size",
            ),
            ({"source": "image_to_volume"}, "Choose an image to boot from (step Source)."),
            ({"source": "image", "image": "cirros", "volume_size": "5"}, "A size is for a new volume"),
            (
                {"source": "image_to_volume", "image": "cirros", "volume_size": "0"},
                "greater than or equal to 1",
            ),
            ({"source": "image_to_volume", "image": "cirros", "volume_size": "x"}, "Enter a whole number."),
            ({"source": "tape"}, "Select a valid choice. tape is not one of the available choices."),
            ({"source": "volume", "boot_volume": "SCRATCH"}, "Volume scratch is not bootable."),
            ({"source": "volume", "boot_volume": "nope"}, "No volume &#x27;nope&#x27;"),
            ({"source": "volume", "boot_volume": "OTHER"}, "No volume"),
            (
                {"source": "image_to_volume", "image": "cirros", "volume_size": "1000"},
                "gigabytes (limit",
            ),
        ],
    )
    def test_bad_combinations_are_form_errors(self, storage, cloud, browse, data, error):
        quotas.set_limits(cloud.project, {"gigabytes": 100})
        other, _ = storage_services.create_volume(cloud.ctx(cloud.other_member), name="theirs", size=1)
        ids = {
            "BOOT": str(storage.pk),
            "SCRATCH": str(Volume.objects.get(name="scratch").pk),
            "OTHER": str(other.pk),
        }
        data = {k: ids.get(v, v) for k, v in data.items()}
        response = browse("member").post(LAUNCH, {"name": "x", "flavor": "m1.tiny", **data})
        assert response.status_code == 400
        html = response.content.decode()
        assert error in html, html[:4000]
        assert not Instance.objects.exists()
        assert not Attachment.objects.exists()
        if "volume_size" in data and data["volume_size"].isdigit():
            assert f'name="volume_size" id="id_volume_size" value="{data["volume_size"]}"' in html  # kept
        if data.get("source") in ("volume", "image_to_volume"):
            assert re.search(
                rf'name="source" value="{data["source"]}" id="source-{data["source"]}" checked', html
            )

    def test_a_source_error_opens_the_source_step(self, storage, browse):
        html = browse("member").post(LAUNCH, {"name": "x", "flavor": "m1.tiny", "source": "volume"}).content
        assert re.search(r'class="nav-link active" id="step-source-tab"', html.decode())


# --- one instance ------------------------------------------------------------------------------------


class TestNoValidHost:
    """A launch no host could take: members read the summary with what the flavor needs, never the
    cloud's host names and free capacity; admins also get each host's reasons. Such an instance never
    got a host, so it offers Delete only (no Stop, no Hard reboot: there is no guest)."""

    @pytest.fixture
    def unplaced(self, setup, cloud):
        make_host("rack7-small", memory_mb=256)
        instance = launch(
            cloud, name="nowhere", flavor=make_flavor("m1.big", vcpus=2, ram_mb=1024, disk_gb=5)
        )
        assert services.schedule_instance(instance.operation_id, instance.pk) is None
        instance.refresh_from_db()
        assert instance.status == "ERROR" and instance.host is None
        assert "rack7-small" in instance.fault["message"]  # the stored fault keeps every reason
        return instance

    SUMMARY = "No valid host was found for flavor m1.big (2 vCPU, 1024 MB RAM, 5 GB disk)."

    def test_member_sees_the_summary_and_only_delete(self, unplaced, browse):
        member = browse("member")
        row = row_of(member.get(LIST).content.decode(), "nowhere")
        assert self.SUMMARY in row and "rack7-small" not in row and "256 MB" not in row
        assert offered(row) == ["delete", "lock"]  # lock is no transition
        html = member.get(f"{LIST}{unplaced.pk}/").content.decode()
        assert self.SUMMARY in html and "rack7-small" not in html
        assert 'data-action="stop"' not in html and 'data-action="reboot_hard"' not in html
        assert 'data-action="delete"' in html

    def test_operations_and_action_logs_hide_the_hosts_from_members(self, unplaced, browse, clients, cloud):
        pages = [browse("member").get("/dashboard/operations/").content.decode()]
        for url in ("/api/v1/operations/", f"/api/v1/compute/instances/{unplaced.pk}/actions/"):
            response = clients["member"].get(url)
            assert response.status_code == 200, url
            pages.append(response.content.decode())
        for page in pages:
            assert "No valid host was found." in page and "rack7-small" not in page
        assert 'Create <code class="small text-secondary">instance.create</code>' in pages[0]
        grant(cloud.admin, cloud.project, "admin")
        admin = token_client(cloud.admin, cloud.project).get("/api/v1/operations/").content.decode()
        assert "rack7-small" in admin

    def test_admin_sees_each_hosts_reasons(self, unplaced, browse):
        html = browse("admin").get(f"{LIST}{unplaced.pk}/").content.decode()
        hosts = re.search(r'<ul [^>]*id="fault-hosts".*?</ul>', html, re.S).group(0)
        assert "<code>rack7-small</code>: not enough RAM: 256 MB free, 1024 MB needed" in hosts
        assert "UTC</div>" in html  # the fault's time, readable

    def test_after_a_failed_spawn_too(self, setup, cloud, browse):
        """A reschedule that finds no host: the fault leads with the spawn's error, on the host."""
        make_host("rack7-h1")
        make_host("rack7-small", memory_mb=256)
        instance = launch(
            cloud, name="retried", flavor=make_flavor("m1.big", vcpus=2, ram_mb=1024, disk_gb=5)
        )
        op = instance.operation_id
        assert services.schedule_instance(op, instance.pk)["host"] == "rack7-h1"
        result = {"ok": False, "host": "rack7-h1", "error": "pool disk gone"}
        assert services.spawn_finished(op, instance.pk, result) == "reschedule"
        assert services.schedule_instance(op, instance.pk) is None
        for page in (
            browse("member").get(f"{LIST}{instance.pk}/"),
            browse("member").get("/dashboard/operations/"),
        ):
            html = page.content.decode()
            assert "No valid host was found" in html and "rack7" not in html and "pool disk gone" not in html
        html = browse("admin").get(f"{LIST}{instance.pk}/").content.decode()
        hosts = re.search(r'<ul [^>]*id="fault-hosts".*?</ul>', html, re.S).group(0)
        assert "<code>rack7-small</code>: not enough RAM" in hosts and "pool disk gone" in html

    def test_the_api_agrees(self, unplaced, clients, cloud):
        url = f"/api/v1/compute/instances/{unplaced.pk}/"
        member = clients["member"].get(url).json()
        assert member["fault"]["message"] == self.SUMMARY and "details" not in member["fault"]
        assert clients["member"].post(url + "stop/").status_code == 409
        grant(cloud.admin, cloud.project, "admin")
        admin = token_client(cloud.admin, cloud.project).get(url).json()
        assert "rack7-small" in admin["fault"]["message"]
        assert admin["fault"]["details"][0]["host"] == "rack7-small"


class TestDetail:
    def test_overview_buttons_and_action_log(self, setup, cloud, browse):
        instance = active(cloud, "web-1", metadata={"role": "web"})
        html = browse("member").get(f"{LIST}{instance.pk}/").content.decode()
        assert 'id="instance-name">web-1<' in html and "role=web" in html
        assert 'data-status="ACTIVE"' in html and "hx-trigger" not in html.split('id="overview-tab"')[0]
        for action in ("stop", "reboot", "reboot_hard", "pause", "suspend", "delete", "lock"):
            assert f'data-action="{action}"' in html
        assert 'data-action="create"' in html and "alice" in html  # the action log
        assert 'id="instance-host"' not in html  # members do not see hosts
        assert 'id="console-tab"' in html

    def test_the_action_log_names_actions_by_their_label_with_utc_times(self, setup, cloud, browse):
        instance = active(cloud)
        services.instance_action(cloud.ctx(cloud.member), instance, "reboot_hard")
        html = browse("member").get(f"{LIST}{instance.pk}/").content.decode()
        log = re.search(r'<div id="instance-action-log".*?</table>', html, re.S).group(0)
        assert '<tr data-action="reboot_hard"' in log and "<td>Hard reboot</td>" in log
        assert "<td>Create</td>" in log and ">reboot_hard<" not in log
        assert re.search(r"<td>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</td>", log)

    def test_transitional_instance_polls_its_summary(self, setup, cloud, browse):
        instance = launch(cloud)
        member = browse("member")
        html = member.get(f"{LIST}{instance.pk}/").content.decode()
        assert f'hx-get="/dashboard/compute/instances/{instance.pk}/?fragment=summary"' in html
        fragment = member.get(
            f"{LIST}{instance.pk}/?fragment=summary", HTTP_HX_REQUEST="true"
        ).content.decode()
        assert fragment.startswith('<div id="instance-summary"') and 'hx-trigger="every 2s"' in fragment
        assert 'id="instance-overview" hx-swap-oob="true"' in fragment
        assert 'id="instance-action-log" hx-swap-oob="true"' in fragment
        Instance.objects.filter(pk=instance.pk).update(vm_state="deleted", task_state="")
        gone = member.get(f"{LIST}{instance.pk}/?fragment=summary", HTTP_HX_REQUEST="true")
        assert gone.status_code == 200 and gone["HX-Redirect"] == LIST

    def test_reader_sees_no_buttons_and_no_console(self, setup, cloud, browse):
        instance = active(cloud)
        html = browse("reader").get(f"{LIST}{instance.pk}/").content.decode()
        assert "data-action=" not in html.replace('data-action="create"', "")
        assert 'id="console-tab"' not in html and 'id="action-log-tab"' in html
        assert browse("reader").get(f"{LIST}{instance.pk}/console/").status_code == 403

    def test_other_project_gets_404_and_admin_sees_it_with_its_host(self, setup, cloud, browse):
        instance = active(cloud)
        url = f"{LIST}{instance.pk}/"
        assert browse("other").get(url).status_code == 404
        assert browse("other").get(url + "console/").status_code == 404
        assert browse("member").get(f"{LIST}{uuid.uuid4()}/").status_code == 404
        html = browse("admin").get(url).content.decode()
        assert f'id="instance-host">{instance.host.name}<' in html and "alpha" in html

    def test_locked_instance_offers_members_only_unlock(self, setup, cloud, browse):
        instance = active(cloud)
        Instance.objects.filter(pk=instance.pk).update(locked=True, locked_by="owner")
        html = browse("member").get(f"{LIST}{instance.pk}/").content.decode()
        assert 'data-action="unlock"' in html and 'data-action="delete"' not in html
        Instance.objects.filter(pk=instance.pk).update(locked_by="admin")
        html = browse("member").get(f"{LIST}{instance.pk}/").content.decode()
        assert 'data-action="unlock"' not in html
        html = browse("admin").get(f"{LIST}{instance.pk}/").content.decode()
        assert 'data-action="unlock"' in html and 'data-action="delete"' in html


class TestConsole:
    def test_simulated_host_says_there_is_no_guest(self, setup, cloud, browse, monkeypatch):
        instance = active(cloud)
        message = "host h is simulated (libvirt's test driver): there is no guest, so no console output"
        monkeypatch.setattr(
            instance_services.dispatch,
            "call_host",
            lambda *a, **k: {"ok": True, "supported": False, "output": "", "message": message},
        )
        response = browse("member").get(f"{LIST}{instance.pk}/console/", HTTP_HX_REQUEST="true")
        html = response.content.decode()
        assert response.status_code == 200 and 'id="console-unsupported"' in html and "no guest" in html
        assert "<html" not in html  # htmx gets the panel only

    def test_output_is_shown_and_lines_are_passed(self, setup, cloud, browse, monkeypatch):
        instance = active(cloud)
        seen = {}

        def call_host(task, host, kwargs, timeout):
            seen.update(kwargs)
            return {"ok": True, "supported": True, "output": "login: <root>", "message": ""}

        monkeypatch.setattr(instance_services.dispatch, "call_host", call_host)
        html = browse("member").get(f"{LIST}{instance.pk}/console/?lines=5").content.decode()
        assert "login: &lt;root&gt;" in html and seen["lines"] == 5 and "<html" in html

    def test_refusals_are_messages(self, setup, cloud, browse):
        member = browse("member")
        building = launch(cloud, name="b")
        html = member.get(f"{LIST}{building.pk}/console/").content.decode()
        assert "has no console yet (status BUILD)" in html
        down = in_state(launch(cloud, name="d"), "active", host=make_host("gone", last_heartbeat=None))
        html = member.get(f"{LIST}{down.pk}/console/").content.decode()
        assert "is down: its console log cannot be read now" in html
        html = member.get(f"{LIST}{down.pk}/console/?lines=0").content.decode()
        assert "greater than or equal to 1" in html


class TestActions:
    def url(self, instance, action):
        return f"{LIST}{instance.pk}/{action}/"

    def test_member_reboots_and_lands_back_where_they_were(self, setup, cloud, browse):
        instance = active(cloud)
        member = browse("member")
        response = member.post(self.url(instance, "reboot"), {"back": "detail"}, follow=True)
        assert response.redirect_chain == [(f"{LIST}{instance.pk}/", 302)]
        assert "Rebooting instance web-1." in response.content.decode()
        instance.refresh_from_db()
        assert instance.status == "REBOOT" and instance.operation.kind == "instance.reboot"
        response = member.post(self.url(instance, "delete"), {"back": "detail"}, follow=True)
        assert response.redirect_chain == [(LIST, 302)]
        assert Instance.objects.get(pk=instance.pk).task_state == "deleting"

    @pytest.mark.parametrize(
        "action, vm_state, task_state",
        [
            ("stop", "stopped", "powering-off"),
            ("reboot_hard", "active", "rebooting_hard"),
            ("pause", "paused", "pausing"),
            ("suspend", "suspended", "suspending"),
        ],
    )
    def test_each_action_starts_its_task(self, setup, cloud, browse, action, vm_state, task_state):
        instance = active(cloud)
        assert browse("member").post(self.url(instance, action)).status_code == 302
        instance.refresh_from_db()
        assert instance.task_state == task_state

    def test_lock_and_unlock(self, setup, cloud, browse):
        instance = active(cloud)
        member = browse("member")
        assert (
            "Instance web-1 is locked."
            in member.post(self.url(instance, "lock"), follow=True).content.decode()
        )
        html = member.post(self.url(instance, "stop"), follow=True).content.decode()
        assert "is locked: unlock it first" in html
        member.post(self.url(instance, "unlock"))
        assert not Instance.objects.get(pk=instance.pk).locked

    def test_state_refusal_is_a_message_not_a_500(self, setup, cloud, browse):
        instance = active(cloud)
        response = browse("member").post(self.url(instance, "start"), follow=True)
        assert response.status_code == 200
        assert "Cannot start instance web-1 while it is active (status ACTIVE)." in response.content.decode()

    def test_roles_csrf_methods_and_unknown_actions(self, setup, cloud, browse):
        instance = active(cloud)
        assert browse("reader").post(self.url(instance, "reboot")).status_code == 403
        assert browse("other").post(self.url(instance, "reboot")).status_code == 404
        assert browse("member", csrf=True).post(self.url(instance, "reboot")).status_code == 403
        assert browse("member").get(self.url(instance, "reboot")).status_code == 405
        assert browse("member").post(self.url(instance, "explode")).status_code == 404
        assert Instance.objects.get(pk=instance.pk).task_state == ""
        assert (
            not ResourceAction.objects.filter(resource_type="instance", resource_id=instance.pk)
            .exclude(action="create")
            .exists()
        )

    def test_admin_acts_on_another_projects_instance_from_the_admin_list(self, setup, cloud, browse):
        instance = active(cloud)
        response = browse("admin").post(self.url(instance, "stop"), {"back": "admin"})
        assert response.status_code == 302 and response["Location"] == ADMIN_LIST
        assert Instance.objects.get(pk=instance.pk).task_state == "powering-off"


# --- admin panels ------------------------------------------------------------------------------------


class TestAdminPanels:
    def test_all_instances_across_projects(self, setup, cloud, browse):
        mine = active(cloud, "alpha-vm")
        theirs = launch(cloud, user=cloud.other_member, name="beta-vm")
        html = browse("admin").get(ADMIN_LIST).content.decode()
        assert 'href="/dashboard/compute/admin/instances/"' in html
        assert "alpha" in row_of(html, "alpha-vm") and mine.host.name in row_of(html, "alpha-vm")
        assert "beta" in row_of(html, "beta-vm")
        assert f"{LIST}{theirs.pk}/row/?admin=1" in row_of(html, "beta-vm")
        assert 'name="back" value="admin"' in html

    @pytest.mark.parametrize("who", ["member", "reader", "other"])
    @pytest.mark.parametrize(
        "url", [ADMIN_LIST, "/dashboard/compute/admin/drift/", "/dashboard/compute/admin/scheduler/"]
    )
    def test_refused_to_others(self, setup, cloud, browse, who, url):
        client = browse(who)
        assert client.get(url).status_code == 403
        html = client.get(LIST).content.decode()
        assert (
            'href="/dashboard/compute/instances/"' in html and 'href="/dashboard/compute/admin/' not in html
        )

    def test_drift(self, setup, cloud, browse):
        host = make_host("h1")
        gone = in_state(launch(cloud, name="gone"), "active", host=host)
        ComputeNode.objects.filter(pk=host.pk).update(
            domains=[{"name": "stray", "uuid": "u-1", "power_state": "running", "instance_id": None}],
            domains_reported_at=timezone.now(),
        )
        html = browse("admin").get("/dashboard/compute/admin/drift/").content.decode()
        assert 'data-domain="stray"' in html and f'data-instance="{gone.pk}"' in html
        assert 'id="unknown-count">1<' in html and 'id="missing-count">1<' in html

    def test_scheduler_explain(self, setup, cloud, browse):
        make_host("roomy")
        make_host("full", vcpus=1, vcpus_used=4)
        make_host("off", enabled=False, disabled_reason="repairs")
        big = str(make_flavor("m1.big", vcpus=2).pk)
        admin = browse("admin")
        html = admin.get("/dashboard/compute/admin/scheduler/", {"flavor": big}).content.decode()
        assert re.search(r'data-host="roomy" data-passed="true"', html)
        assert "not enough vCPUs: 0 free, 2 needed" in html and "host is disabled (repairs)" in html
        html = admin.get(
            "/dashboard/compute/admin/scheduler/", {"flavor": str(uuid.uuid4())}
        ).content.decode()
        assert "Select a valid choice" in html
        # Every bad value gets its message (a 3000-character type was silently dropped).
        html = admin.get(
            "/dashboard/compute/admin/scheduler/",
            {"flavor": big, "hypervisor_type": "x" * 3000, "availability_zone": "z" * 65},
        ).content.decode()
        assert "Ensure this value has at most 32 characters (it has 3000)." in html
        assert "Ensure this value has at most 64 characters (it has 65)." in html
        assert 'id="explain-result"' not in html

    def test_a_bad_filter_value_is_named_and_the_good_ones_still_apply(self, setup, cloud, browse):
        active(cloud, "alpha-web")
        launch(cloud, name="beta-db")
        html = browse("member").get(LIST, {"status": "bogus", "q": "web"}).content.decode()
        error = re.search(r'<div class="alert[^"]*filter-error".*?</div></div>', html, re.S).group(0)
        assert "Status: Select a valid choice. bogus is not one of the available choices." in error
        assert 'data-name="alpha-web"' in html and 'data-name="beta-db"' not in html  # q still applies

    def test_operations_across_projects_toggle(self, setup, cloud, browse):
        launch(cloud, name="a")
        launch(cloud, user=cloud.other_member, name="b")
        admin = browse("admin")
        assert admin.get("/dashboard/operations/").content.count(b"instance.create") == 0
        html = admin.get("/dashboard/operations/", {"all": "1"}).content.decode()
        assert html.count("instance.create") == 2 and "beta" in html
        member_html = browse("member").get("/dashboard/operations/", {"all": "1"}).content.decode()
        assert member_html.count("instance.create") == 1 and "All projects" not in member_html


# --- fixed query counts ------------------------------------------------------------------------------


def _unlimited(cloud):
    for project in (cloud.project, cloud.other_project):
        quotas.set_limits(project, {"instances": -1, "cores": -1, "ram": -1})


def test_instances_page_queries(setup, cloud, browse, django_assert_num_queries):
    _unlimited(cloud)
    host = make_host("h1")
    in_state(launch(cloud, name="first"), "active", host=host)
    launch(cloud, name="building")

    def grow():
        for n in range(MANY):
            instance = launch(cloud, name=f"vm{n}")
            if n % 2:
                in_state(instance, "active", host=host)

    member = browse("member")
    assert_fixed_queries(
        django_assert_num_queries,
        lambda: member.get(LIST),
        PAGE_QUERIES,
        grow=grow,
        rows=page_rows(b"<tr id="),
    )


def test_admin_instances_page_queries(setup, cloud, browse, django_assert_num_queries):
    _unlimited(cloud)
    launch(cloud, name="first")

    def grow():
        for n in range(MANY // 2):
            launch(cloud, name=f"a{n}")
            launch(cloud, user=cloud.other_member, name=f"b{n}")

    admin = browse("admin")
    assert_fixed_queries(
        django_assert_num_queries,
        lambda: admin.get(ADMIN_LIST),
        PAGE_QUERIES,
        grow=grow,
        rows=page_rows(b"<tr id="),
    )


def test_detail_page_queries(setup, cloud, browse, django_assert_num_queries):
    instance = active(cloud)
    url = f"{LIST}{instance.pk}/"

    def grow():
        for _ in range(MANY):
            ResourceAction.objects.create(
                resource_type="instance",
                resource_id=instance.pk,
                project=instance.project,
                action="reboot",
                user=cloud.member,
                result="success",
            )

    member = browse("member")
    assert_fixed_queries(
        django_assert_num_queries,
        lambda: member.get(url),
        DETAIL_QUERIES,
        grow=grow,
        rows=page_rows(b'data-action="reboot" data-result'),
    )


def test_row_partial_queries(setup, cloud, browse, django_assert_num_queries):
    instance = launch(cloud)
    member = browse("member")
    url = f"{LIST}{instance.pk}/row/"
    member.get(url)
    with django_assert_num_queries(ROW_QUERIES):
        assert member.get(url, HTTP_HX_REQUEST="true").status_code == 200


def test_launch_page_queries(setup, cloud, browse, django_assert_num_queries):
    make_host("h1")
    KeyPairFactory(user=cloud.member, name="k0")

    VolumeType.objects.get_or_create(name="default", defaults={"backend": "local", "is_default": True})
    make_storage_host("store-1", capacity_gb=1000)
    quotas.set_limits(cloud.project, {"volumes": -1, "gigabytes": -1})
    Volume.objects.filter(pk=available(cloud, "boot-0").pk).update(bootable=True)

    def grow():
        for n in range(MANY):
            make_flavor(f"f{n}")
            make_image(f"img{n}")
            KeyPairFactory(user=cloud.member, name=f"k{n + 1}")
            Volume.objects.filter(pk=available(cloud, f"boot-{n + 1}").pk).update(bootable=True)

    member = browse("member")
    assert_fixed_queries(
        django_assert_num_queries,
        lambda: member.get(LAUNCH),
        LAUNCH_QUERIES,
        grow=grow,
        rows=page_rows(b"<tr data-flavor="),
    )


def test_django_admin_shows_instances_read_only(cloud, client):
    from tests.compute.instance_helpers import in_state, launch, make_image

    make_image()
    instance = in_state(launch(cloud), "active")
    cloud.admin.is_staff = cloud.admin.is_superuser = True  # the Django admin site is for staff
    cloud.admin.save()
    client.force_login(cloud.admin)
    assert client.get("/django-admin/compute/instance/").status_code == 200
    page = client.get(f"/django-admin/compute/instance/{instance.pk}/change/")
    assert page.status_code == 200 and b"create" in page.content  # the action log inline
    assert (
        client.post(f"/django-admin/compute/instance/{instance.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert client.get("/django-admin/identity/resourceaction/").status_code == 200
