"""The storage dashboard: volumes (table with polling rows, create from blank / image / snapshot /
volume, extend, snapshot, delete, attach to an instance chosen from a list, detach), snapshots, the
volume detail, the instance detail's Volumes section, the admins' panels; refusals shown on the
form or as a message (never a 500); fixed query counts at 1 and 20 rows."""

from __future__ import annotations

import re
import uuid

import pytest
from django.test import Client

from compute.models import Instance
from identity import quotas
from storage import services
from storage.models import Attachment, Snapshot, Volume, VolumeType
from tests.compute.instance_helpers import in_state, launch, make_image
from tests.identity.test_query_counts import MANY, assert_fixed_queries, page_rows
from workers.messages import AttachmentResult

from .conftest import attached, available, make_storage_host, settle

pytestmark = pytest.mark.django_db

BASE = "/dashboard/storage/"
LIST = BASE + "volumes/"
CREATE = BASE + "volumes/create/"
SNAPSHOTS = BASE + "snapshots/"
ADMIN_VOLUMES = BASE + "admin/volumes/"
ADMIN_TYPES = BASE + "admin/volume-types/"
ADMIN_BACKENDS = BASE + "admin/backends/"
# session, user, current project, roles, the table's COUNT and rows, the rows' live attachments, the
# attached instances' names (compute's; none when nothing is attached), the project switcher's list
PAGE_QUERIES = 9
# session, user, current project, roles, COUNT, rows (with their volume and operation), switcher
SNAPSHOT_PAGE_QUERIES = 7
# session, user, current project, roles, COUNT, rows with use counts, switcher
ADMIN_PLAIN_QUERIES = 7
# session, user, current project, roles, the volume (type, operation, pool, host, project) and its
# live attachment, its attachments, their instances' names, its snapshots, its action log, the switcher
DETAIL_QUERIES = 11


@pytest.fixture
def browse(cloud):
    def login(who: str) -> Client:
        client = Client()
        client.force_login({"other": cloud.other_member}.get(who) or getattr(cloud, who))
        return client

    return login


def row_of(html: str, name: str) -> str:
    match = re.search(rf'<tr [^>]*data-name="{re.escape(name)}".*?</tr>', html, re.S)
    assert match, f"no row {name}"
    return match.group(0)


def creating(cloud, name="new", size=1) -> Volume:
    volume, _ = services.create_volume(cloud.ctx(cloud.member), name=name, size=size)
    return volume


def running_instance(cloud, name="web-1", host="store-1") -> Instance:
    from workers.models import Host

    return in_state(launch(cloud, name=name), "active", host=Host.objects.get(name=host))


# --- the table ---------------------------------------------------------------------------------------


class TestVolumesPage:
    def test_rows_show_status_size_type_and_poll_only_while_transitional(self, cloud, pool, browse):
        creating(cloud, "new-one", size=2)
        available(cloud, "ready")
        html = browse("member").get(LIST).content.decode()
        assert 'href="/dashboard/storage/volumes/create/"' in html
        new = row_of(html, "new-one")
        assert 'badge text-bg-info volume-status">creating<' in new
        assert 'hx-trigger="every 2s"' in new and "/row/" in new and "2 GiB" in new
        assert 'class="progress volume-progress' in new
        ready = row_of(html, "ready")
        assert 'text-bg-success volume-status">available<' in ready and "hx-get" not in ready
        # buttons from the declared transitions: what "available" allows
        for action in ("extend", "attach", "delete", "snapshot", "clone"):
            assert f'data-action="{action}"' in ready
        assert 'data-action="detach"' not in ready

    def test_reader_sees_rows_without_buttons(self, cloud, pool, browse):
        available(cloud, "ready")
        html = browse("reader").get(LIST).content.decode()
        assert "ready" in html and 'data-action="delete"' not in html and "Create volume</a>" not in html

    def test_other_project_sees_none_of_them(self, cloud, pool, browse):
        available(cloud, "mine")
        assert "mine" not in browse("other").get(LIST).content.decode()

    def test_row_partial_and_row_gone_once_deleted(self, cloud, pool, browse):
        volume = available(cloud, "ready")
        client = browse("member")
        response = client.get(f"{LIST}{volume.pk}/row/")
        assert response.status_code == 200 and response.content.decode().startswith("<tr ")
        services.delete_volume(cloud.ctx(cloud.member), volume)
        settle(volume, "delete", {"ok": True, "message": "deleted"})
        assert client.get(f"{LIST}{volume.pk}/row/").content == b""
        assert browse("other").get(f"{LIST}{volume.pk}/row/").status_code == 404

    def test_fixed_queries(self, cloud, pool, browse, django_assert_num_queries):
        client = browse("member")
        attached(cloud, available(cloud, "first"), uuid.uuid4())

        def grow():
            quotas.set_limits(cloud.project, {"volumes": -1, "gigabytes": -1})
            for n in range(MANY):
                volume = available(cloud, f"v-{n}")
                if n % 2:
                    attached(cloud, volume, uuid.uuid4())

        assert_fixed_queries(
            django_assert_num_queries,
            lambda: client.get(LIST),
            PAGE_QUERIES,
            grow=grow,
            rows=page_rows(b'class="badge text-bg-'),
        )


# --- create ------------------------------------------------------------------------------------------


class TestCreate:
    def test_form_lists_sources_and_types(self, cloud, pool, browse):
        make_image("cirros")
        snap_source = available(cloud, "origin")
        snap = services.create_snapshot(cloud.ctx(cloud.member), volume=str(snap_source.pk), name="s1")
        settle_snapshot(snap)
        client = browse("member")
        html = client.get(CREATE).content.decode()
        for label in ("Blank volume", "Image", "Snapshot", "Another volume (clone)", "default (default)"):
            assert label in html
        assert 'name="idempotency_key"' in html and 'name="size"' in html
        assert 'name="image"' not in html and 'name="snapshot"' not in html  # a blank volume's fields only
        assert "cirros" in client.get(CREATE + "?source=image").content.decode()
        assert "s1 (1 GiB)" in client.get(CREATE + "?source=snapshot").content.decode()
        # The source changed: the fields are redrawn for it, with what was typed kept.
        fragment = client.get(
            CREATE, {"fragment": "fields", "source": "volume", "name": "typed"}, HTTP_HX_REQUEST="true"
        ).content.decode()
        assert "<html" not in fragment and 'value="typed"' in fragment and "origin (1 GiB)" in fragment
        assert 'name="volume_type"' not in fragment  # a clone keeps its origin's type

    def test_blank_create(self, cloud, pool, browse):
        response = browse("member").post(CREATE, {"name": "data", "source": "blank", "size": "3"})
        assert response.status_code == 302 and response["Location"] == LIST
        volume = Volume.objects.get(name="data")
        assert volume.size == 3 and volume.status == Volume.CREATING and volume.operation is not None

    def test_double_post_creates_one(self, cloud, pool, browse):
        client = browse("member")
        data = {"name": "data", "source": "blank", "size": "1", "idempotency_key": str(uuid.uuid4())}
        client.post(CREATE, data)
        client.post(CREATE, data)
        assert Volume.objects.filter(name="data").count() == 1

    @pytest.mark.parametrize(
        "size, error",
        [
            ("0", "greater than or equal to 1"),
            ("abc", "Enter a whole number"),
            ("", "A blank volume needs a size"),
            ("999999", "less than or equal to"),
        ],
    )
    def test_bad_size_is_an_inline_error_keeping_the_input(self, cloud, pool, browse, size, error):
        response = browse("member").post(CREATE, {"name": "keep-me", "source": "blank", "size": size})
        assert response.status_code == 400
        html = response.content.decode()
        assert error in html and 'value="keep-me"' in html and "invalid-feedback" in html
        assert not Volume.objects.filter(name="keep-me").exists()

    def test_over_quota_is_a_form_error(self, cloud, pool, browse):
        quotas.set_limits(cloud.project, {"gigabytes": 5})
        response = browse("member").post(CREATE, {"name": "huge", "source": "blank", "size": "6"})
        assert response.status_code == 400
        html = response.content.decode()
        assert "form-error" in html and "gigabytes (limit 5" in html and 'value="huge"' in html

    def test_no_backend_with_room_is_a_form_error(self, cloud, pool, browse):
        response = browse("member").post(CREATE, {"name": "big", "source": "blank", "size": "500"})
        assert response.status_code == 400 and "No valid storage backend" in response.content.decode()

    def test_source_needs_its_choice(self, cloud, pool, browse):
        response = browse("member").post(CREATE, {"name": "x", "source": "snapshot"})
        assert (
            response.status_code == 400 and "Choose the snapshot to start from" in response.content.decode()
        )

    def test_from_snapshot_and_clone(self, cloud, pool, browse):
        origin = available(cloud, "origin", size=2)
        snap = settle_snapshot(
            services.create_snapshot(cloud.ctx(cloud.member), volume=str(origin.pk), name="s")
        )
        client = browse("member")
        response = client.get(f"{SNAPSHOTS}{snap.pk}/new-volume/")
        assert response.status_code == 302 and f"snapshot={snap.pk}" in response["Location"]
        assert f'value="{snap.pk}" selected' in client.get(response["Location"]).content.decode()
        client.post(CREATE, {"name": "from-snap", "source": "snapshot", "snapshot": str(snap.pk)})
        client.post(
            CREATE, {"name": "clone", "source": "volume", "source_volume": str(origin.pk), "size": "3"}
        )
        assert Volume.objects.get(name="from-snap").source == Volume.SNAPSHOT
        clone = Volume.objects.get(name="clone")
        assert (clone.source, clone.size, clone.source_volume_id) == (Volume.VOLUME, 3, origin.pk)

    def test_from_image(self, cloud, pool, browse):
        image = make_image("cirros")
        browse("member").post(
            CREATE, {"name": "boot", "source": "image", "image": str(image.pk), "size": "1"}
        )
        volume = Volume.objects.get(name="boot")
        assert volume.source_image_id == image.pk and volume.bootable

    def test_reader_may_not_create(self, cloud, pool, browse):
        assert browse("reader").get(CREATE).status_code == 403


def settle_snapshot(snap: Snapshot) -> Snapshot:
    snap = Snapshot.objects.get(pk=snap.pk)
    services.SNAPSHOT.settle(str(snap.operation_id), str(snap.pk), "create", {"ok": True, "message": "ok"})
    return Snapshot.objects.get(pk=snap.pk)


# --- actions -----------------------------------------------------------------------------------------


class TestActions:
    def test_extend(self, cloud, pool, browse):
        volume = available(cloud, "data", size=2)
        client = browse("member")
        assert 'value="3"' in client.get(f"{LIST}{volume.pk}/extend/").content.decode()
        response = client.post(f"{LIST}{volume.pk}/extend/", {"new_size": "1"})
        assert response.status_code == 400 and "larger than the volume" in response.content.decode()
        response = client.post(f"{LIST}{volume.pk}/extend/", {"new_size": "abc"})
        assert response.status_code == 400 and 'value="abc"' in response.content.decode()
        response = client.post(f"{LIST}{volume.pk}/extend/", {"new_size": "4", "back": "detail"})
        assert response.status_code == 302 and response["Location"] == f"{LIST}{volume.pk}/"
        assert Volume.objects.get(pk=volume.pk).busy == Volume.EXTENDING

    def test_snapshot(self, cloud, pool, browse):
        volume = available(cloud, "data")
        client = browse("member")
        assert client.post(f"{LIST}{volume.pk}/snapshot/", {"name": ""}).status_code == 400
        assert client.post(f"{LIST}{volume.pk}/snapshot/", {"name": "snap-1"}).status_code == 302
        assert Snapshot.objects.get(name="snap-1").volume_id == volume.pk

    def test_upload_to_image(self, cloud, pool, browse):
        from compute.models import Image

        volume = available(cloud, "data")
        client = browse("member")
        detail = client.get(f"{LIST}{volume.pk}/").content.decode()
        assert f'href="{LIST}{volume.pk}/upload/?back=detail" data-action="upload"' in detail
        form = client.get(f"{LIST}{volume.pk}/upload/?back=detail").content.decode()
        assert 'name="image_name"' in form and 'value="data"' in form and 'value="qcow2"' in form
        key = re.search(r'name="idempotency_key" value="([^"]+)"', form).group(1)
        # Bad input: an inline error, what was typed kept, nothing started.
        response = client.post(f"{LIST}{volume.pk}/upload/", {"image_name": "", "disk_format": "raw"})
        assert response.status_code == 400 and "Give the image a name." in response.content.decode()
        response = client.post(f"{LIST}{volume.pk}/upload/", {"image_name": "img", "disk_format": "vmdk"})
        html = response.content.decode()
        assert response.status_code == 400 and "Select a valid choice" in html and 'value="img"' in html
        assert Volume.objects.get(pk=volume.pk).busy == "" and not Image.objects.exists()

        data = {"image_name": "data-image", "disk_format": "qcow2", "idempotency_key": key, "back": "detail"}
        response = client.post(f"{LIST}{volume.pk}/upload/", data, follow=True)
        assert response.redirect_chain == [(f"{LIST}{volume.pk}/", 302)]
        assert "Uploading volume data to image data-image." in response.content.decode()
        assert Volume.objects.get(pk=volume.pk).busy == Volume.UPLOADING
        client.post(f"{LIST}{volume.pk}/upload/", data)  # posted twice: one image
        image = Image.objects.get()
        assert (image.name, image.disk_format, image.status) == ("data-image", "qcow2", "queued")
        assert image.project_id == cloud.project.pk

        # While it uploads the button is gone, and another upload is refused on the form with the state.
        detail = client.get(f"{LIST}{volume.pk}/").content.decode()
        assert f"{volume.pk}/upload/" not in detail
        response = client.post(f"{LIST}{volume.pk}/upload/", {"image_name": "again", "disk_format": "raw"})
        assert response.status_code == 400 and "uploading" in response.content.decode()
        assert Image.objects.count() == 1

    def test_upload_to_image_roles_and_other_projects(self, cloud, pool, browse):
        volume = available(cloud, "data")
        data = {"image_name": "x", "disk_format": "raw"}
        assert browse("reader").post(f"{LIST}{volume.pk}/upload/", data).status_code == 403
        assert browse("other").post(f"{LIST}{volume.pk}/upload/", data).status_code == 404
        assert browse("other").get(f"{LIST}{volume.pk}/upload/").status_code == 404
        assert Volume.objects.get(pk=volume.pk).busy == ""

    def test_snapshot_over_quota_is_a_form_error(self, cloud, pool, browse):
        volume = available(cloud, "data")
        quotas.set_limits(cloud.project, {"snapshots": 0})
        response = browse("member").post(f"{LIST}{volume.pk}/snapshot/", {"name": "snap-1"})
        assert response.status_code == 400 and "snapshots (limit 0" in response.content.decode()

    def test_delete(self, cloud, pool, browse):
        volume = available(cloud, "data")
        response = browse("member").post(f"{LIST}{volume.pk}/delete/")
        assert response.status_code == 302 and Volume.objects.get(pk=volume.pk).busy == Volume.DELETING

    def test_delete_refused_with_the_reason(self, cloud, pool, browse):
        volume = attached(cloud, available(cloud, "data"), uuid.uuid4())
        client = browse("member")
        response = client.post(f"{LIST}{volume.pk}/delete/", follow=True)
        assert response.status_code == 200
        assert "is in-use" in response.content.decode() or "detach it first" in response.content.decode()
        assert Volume.objects.get(pk=volume.pk).status == Volume.IN_USE

    def test_other_project_gets_404(self, cloud, pool, browse):
        volume = available(cloud, "data")
        client = browse("other")
        assert client.post(f"{LIST}{volume.pk}/delete/").status_code == 404
        assert client.get(f"{LIST}{volume.pk}/").status_code == 404
        assert client.get(f"{LIST}{volume.pk}/extend/").status_code == 404

    def test_attach_to_an_instance_chosen_from_a_list_then_detach(self, cloud, pool, browse):
        volume = available(cloud, "data")
        instance = running_instance(cloud, "web-1")
        in_state(launch(cloud, name="building-one"), "building", "spawning")
        client = browse("member")
        page = client.get(f"/dashboard/compute/volumes/{volume.pk}/attach/").content.decode()
        assert "web-1 (ACTIVE)" in page and "building-one" not in page
        response = client.post(f"/dashboard/compute/volumes/{volume.pk}/attach/", {"instance": ""})
        assert response.status_code == 400 and "Choose an instance" in response.content.decode()
        response = client.post(
            f"/dashboard/compute/volumes/{volume.pk}/attach/",
            {"instance": str(instance.pk), "back": "detail"},
        )
        assert response.status_code == 302 and response["Location"] == f"{LIST}{volume.pk}/"
        assert Attachment.objects.live().get(volume=volume).device == "/dev/vdb"
        settle(volume, "attach", AttachmentResult(ok=True, target_dev="vdb", live=True).as_dict())
        row = row_of(client.get(LIST).content.decode(), "data")
        assert "in-use" in row and "/dev/vdb" in row and 'data-action="detach"' in row
        assert f'title="instance {instance.pk}">web-1</a>' in row
        assert client.post(f"/dashboard/compute/volumes/{volume.pk}/detach/").status_code == 302
        assert Volume.objects.get(pk=volume.pk).busy == Volume.DETACHING

    def test_attach_refusal_is_a_form_error(self, cloud, pool, browse):
        volume = available(cloud, "data")  # on store-1, which only store-1 reaches
        make_storage_host("elsewhere")
        instance = running_instance(cloud, "far", host="elsewhere")
        response = browse("member").post(
            f"/dashboard/compute/volumes/{volume.pk}/attach/", {"instance": str(instance.pk)}
        )
        assert response.status_code == 400 and "cannot reach volume" in response.content.decode()


# --- detail ------------------------------------------------------------------------------------------


class TestDetail:
    def test_shows_attachment_progress_and_action_log(self, cloud, pool, browse, django_assert_num_queries):
        instance_id = uuid.uuid4()
        volume = attached(cloud, available(cloud, "data"), instance_id)
        client = browse("member")
        url = f"{LIST}{volume.pk}/"
        client.get(url)
        with django_assert_num_queries(DETAIL_QUERIES):
            html = client.get(url).content.decode()
        assert f'data-instance="{instance_id}" data-live="true"' in html and "/dev/vdb" in html
        assert 'data-action="create"' in html and 'data-action="attach"' in html
        assert 'id="volume-operation" data-state="succeeded"' in html
        assert 'data-polling="true"' not in html
        assert 'id="volume-host"' not in html  # hosts are for admins

    def test_transitional_summary_polls_and_shows_progress_message(self, cloud, pool, browse):
        from workers import services as ledger
        from workers.models import Operation

        volume = creating(cloud, "new")
        Operation.objects.filter(pk=volume.operation_id).update(state=Operation.RUNNING)
        ledger.report_progress(volume.operation_id, 40, "copied 400 MiB of 1 GiB")
        client = browse("member")
        html = client.get(f"{LIST}{volume.pk}/").content.decode()
        assert 'data-polling="true"' in html and "copied 400 MiB of 1 GiB" in html
        fragment = client.get(f"{LIST}{volume.pk}/?fragment=summary", HTTP_HX_REQUEST="true").content.decode()
        assert fragment.startswith('<div id="volume-summary"') and 'hx-swap-oob="true"' in fragment

    def test_a_summary_poll_after_the_delete_redirects_to_the_list(self, cloud, pool, browse):
        volume = available(cloud, "data")
        services.delete_volume(cloud.ctx(cloud.member), volume)
        settle(volume, "delete", {"ok": True, "message": "deleted"})
        client = browse("member")
        response = client.get(f"{LIST}{volume.pk}/?fragment=summary", HTTP_HX_REQUEST="true")
        assert response.status_code == 200 and response["HX-Redirect"] == LIST
        assert client.get(f"{LIST}{volume.pk}/").status_code == 404

    def test_admin_sees_the_backend(self, cloud, pool, browse):
        volume = available(cloud, "data")
        html = browse("admin").get(f"{LIST}{volume.pk}/").content.decode()
        assert "local on store-1" in html and 'data-action="reset_state"' in html


# --- snapshots ---------------------------------------------------------------------------------------


class TestSnapshots:
    def test_list_and_delete(self, cloud, pool, browse, django_assert_num_queries):
        origin = available(cloud, "origin")
        ctx = cloud.ctx(cloud.member)
        snap = settle_snapshot(services.create_snapshot(ctx, volume=str(origin.pk), name="first"))
        client = browse("member")
        row = row_of(client.get(SNAPSHOTS).content.decode(), "first")
        assert "available" in row and 'data-action="delete"' in row and 'data-action="new_volume"' in row

        def grow():
            quotas.set_limits(cloud.project, {"snapshots": -1, "gigabytes": -1})
            for n in range(MANY):
                services.create_snapshot(ctx, volume=str(origin.pk), name=f"s-{n}")
                Volume.objects.filter(pk=origin.pk).update(busy="")

        assert_fixed_queries(
            django_assert_num_queries,
            lambda: client.get(SNAPSHOTS),
            SNAPSHOT_PAGE_QUERIES,
            grow=grow,
            rows=page_rows(b'class="badge text-bg-'),
        )
        assert client.post(f"{SNAPSHOTS}{snap.pk}/delete/").status_code == 302
        assert Snapshot.objects.get(pk=snap.pk).busy == Snapshot.DELETING
        polling = client.get(f"{SNAPSHOTS}{snap.pk}/row/").content.decode()
        assert 'data-polling="true"' in polling and "deleting" in polling
        assert browse("other").get(f"{SNAPSHOTS}{snap.pk}/row/").status_code == 404
        services.SNAPSHOT.settle(
            str(Snapshot.objects.get(pk=snap.pk).operation_id), str(snap.pk), "delete", {"ok": True}
        )
        assert client.get(f"{SNAPSHOTS}{snap.pk}/row/").content == b""


# --- the instance detail's Volumes section ----------------------------------------------------------


class TestInstanceVolumes:
    def test_lists_attached_and_attaches_an_available_one(self, cloud, pool, browse):
        instance = running_instance(cloud, "web-1")
        volume = available(cloud, "data")
        spare = available(cloud, "spare")
        attached(cloud, volume, instance.pk)
        client = browse("member")
        detail = client.get(f"/dashboard/compute/instances/{instance.pk}/").content.decode()
        assert f"/dashboard/compute/instances/{instance.pk}/volumes/" in detail
        html = client.get(f"/dashboard/compute/instances/{instance.pk}/volumes/").content.decode()
        assert "data" in row_of(html, "data") and "/dev/vdb" in html and "Detach" in html
        assert f'<option value="{spare.pk}">spare (1 GiB)</option>' in html
        response = client.post(
            f"/dashboard/compute/instances/{instance.pk}/volumes/attach/", {"volume": str(spare.pk)}
        )
        assert response.status_code == 302
        assert Attachment.objects.live().get(volume=spare).device == "/dev/vdc"
        response = client.post(
            f"/dashboard/compute/instances/{instance.pk}/volumes/attach/", {"volume": "nope"}
        )
        assert response.status_code == 302  # a message, not a 500


# --- admin -------------------------------------------------------------------------------------------


class TestAdmin:
    def test_members_are_refused(self, cloud, pool, browse):
        client = browse("member")
        for url in (ADMIN_VOLUMES, ADMIN_TYPES, ADMIN_BACKENDS):
            assert client.get(url).status_code == 403

    def test_all_volumes_with_project_and_host(self, cloud, pool, browse, django_assert_num_queries):
        attached(cloud, available(cloud, "first"), uuid.uuid4())
        client = browse("admin")
        row = row_of(client.get(ADMIN_VOLUMES).content.decode(), "first")
        assert cloud.project.name in row and "store-1" in row and 'data-action="force_detach"' in row
        assert 'data-action="reset_state"' in row and 'data-action="detach"' not in row  # not its project

        def grow():
            quotas.set_limits(cloud.project, {"volumes": -1, "gigabytes": -1})
            for n in range(MANY):
                available(cloud, f"v-{n}")

        assert_fixed_queries(
            django_assert_num_queries,
            lambda: client.get(ADMIN_VOLUMES),
            PAGE_QUERIES,
            grow=grow,
            rows=page_rows(b'class="badge text-bg-'),
        )

    def test_force_detach_and_reset_state(self, cloud, pool, browse):
        volume = attached(cloud, available(cloud, "data"), uuid.uuid4())
        client = browse("admin")
        response = client.post(f"{LIST}{volume.pk}/force-detach/", {"back": "admin"})
        assert response.status_code == 302 and response["Location"] == ADMIN_VOLUMES
        assert Volume.objects.get(pk=volume.pk).status == Volume.AVAILABLE
        response = client.post(f"{LIST}{volume.pk}/reset-state/", {"status": "in-use"})
        assert response.status_code == 400 and "has no attachment" in response.content.decode()
        assert client.post(f"{LIST}{volume.pk}/reset-state/", {"status": "error"}).status_code == 302
        assert Volume.objects.get(pk=volume.pk).status == Volume.ERROR
        assert browse("member").post(f"{LIST}{volume.pk}/force-detach/").status_code == 403

    def test_volume_types(self, cloud, pool, browse, django_assert_num_queries):
        client = browse("admin")
        response = client.post(ADMIN_TYPES, {"name": "fast", "backend": "ssd", "extra_specs": "thin=true"})
        assert response.status_code == 302
        assert VolumeType.objects.get(name="fast").extra_specs == {"thin": "true"}
        response = client.post(ADMIN_TYPES, {"name": "fast", "backend": "ssd"})
        assert response.status_code == 200 and "exists already" in response.content.decode()
        response = client.post(ADMIN_TYPES, {"name": "bad", "backend": "x", "extra_specs": "nokey"})
        assert "is not key=value" in response.content.decode()
        available(cloud, "data")
        html = client.get(ADMIN_TYPES).content.decode()
        assert "<code>thin=true</code>" in html
        fast = VolumeType.objects.get(name="fast")
        assert client.post(f"{ADMIN_TYPES}{fast.pk}/delete/").status_code == 302
        default = VolumeType.objects.get(name="default")
        client.post(f"{ADMIN_TYPES}{default.pk}/delete/")
        assert VolumeType.objects.filter(name="default").exists()  # used by a volume: refused

        def grow():
            for n in range(MANY):
                VolumeType.objects.create(name=f"t-{n}")

        assert_fixed_queries(
            django_assert_num_queries,
            lambda: client.get(ADMIN_TYPES),
            ADMIN_PLAIN_QUERIES,
            grow=grow,
            rows=page_rows(b'data-confirm="Delete volume type '),
        )

    def test_backends_with_capacity_bars(self, cloud, pool, browse, django_assert_num_queries):
        available(cloud, "data", size=30)
        client = browse("admin")
        row = row_of(client.get(ADMIN_BACKENDS).content.decode(), "local@store-1")
        assert "30 of 100 GiB" in row and 'aria-valuenow="30"' in row and "simulated" in row

        def grow():
            for n in range(MANY):
                make_storage_host(f"store-x{n}")

        assert_fixed_queries(
            django_assert_num_queries,
            lambda: client.get(ADMIN_BACKENDS),
            ADMIN_PLAIN_QUERIES,
            grow=grow,
            rows=page_rows(b'class="progress capacity-bar"'),
        )


def test_overview_shows_storage_quota_usage(cloud, pool, browse):
    available(cloud, "data", size=3)
    html = browse("member").get("/dashboard/overview/").content.decode()
    for resource, figures in (("volumes", "1 of 10"), ("gigabytes", "3 of 1000"), ("snapshots", "0 of 10")):
        card = re.search(rf'data-resource="{resource}".*?quota-figures">([^<]*)<', html, re.S)
        assert card and card.group(1) == figures


def test_sidebar_lists_storage_pages(cloud, browse):
    member = browse("member").get("/dashboard/overview/").content.decode()
    assert 'href="/dashboard/storage/volumes/"' in member and 'href="/dashboard/storage/snapshots/"' in member
    assert ADMIN_BACKENDS not in member
    admin = browse("admin").get("/dashboard/overview/").content.decode()
    for url in (ADMIN_VOLUMES, ADMIN_TYPES, ADMIN_BACKENDS):
        assert f'href="{url}"' in admin
