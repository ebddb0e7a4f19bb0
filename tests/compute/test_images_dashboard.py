"""The Images page: list, upload (streamed from Django's upload handlers), download, delete, per role;
a fixed number of queries whatever the number of rows."""

from __future__ import annotations

import itertools

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from compute import services
from compute.models import Image
from tests.identity.test_query_counts import MANY, assert_fixed_queries, page_rows

from .image_helpers import DATA, sha256, share_accepted, uploaded_image

PAGE = "/dashboard/compute/images/"
UPLOAD = "/dashboard/compute/images/upload/"
# session, user, current project, roles, the table's COUNT and rows, the offers, the project switcher
PAGE_QUERIES = 8


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def login(client, user):
    client.force_login(user)
    return client


def upload_form(name="cirros", data=DATA, **fields):
    return {
        "name": name,
        "file": SimpleUploadedFile(f"{name}.qcow2", data, content_type="application/octet-stream"),
        "disk_format": "qcow2",
        "visibility": "private",
        "min_disk": 1,
        "min_ram": 64,
        **fields,
    }


def test_anonymous_is_sent_to_login(client):
    assert client.get(PAGE)["Location"].startswith("/login/")


def test_member_sees_images_and_the_upload_form(cloud, client):
    uploaded_image(cloud.ctx(cloud.member), "alpha-disk")
    uploaded_image(cloud.ctx(cloud.other_member), "beta-disk")
    body = login(client, cloud.member).get(PAGE).content.decode()
    assert 'data-name="alpha-disk"' in body and "beta-disk" not in body
    assert 'id="image-form"' in body and 'enctype="multipart/form-data"' in body
    assert sha256(DATA)[:12] in body
    assert 'href="/dashboard/compute/images/"' in body  # the navigation entry
    assert 'value="public"' not in body  # only cloud admins publish


def test_reader_sees_but_cannot_upload_or_delete(cloud, client):
    image = uploaded_image(cloud.ctx(cloud.member), "alpha-disk")
    login(client, cloud.reader)
    body = client.get(PAGE).content.decode()
    assert 'data-name="alpha-disk"' in body
    assert 'id="image-form"' not in body and "Delete image" not in body
    assert client.post(UPLOAD, upload_form()).status_code == 403
    assert client.post(f"/dashboard/compute/images/{image.pk}/delete/").status_code == 403
    assert list(Image.objects.values_list("name", "status")) == [("alpha-disk", "active")]


def test_member_uploads_a_large_file_through_a_temporary_file(cloud, client, settings):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024  # Django keeps anything bigger on disk
    data = bytes(range(256)) * 8192  # 2 MiB
    response = login(client, cloud.member).post(UPLOAD, upload_form(data=data))
    assert response.status_code == 302, response.content.decode()[:2000]
    image = Image.objects.get(name="cirros")
    assert (image.status, image.size, image.checksum, image.project) == (
        Image.ACTIVE,
        len(data),
        sha256(data),
        cloud.project,
    )
    assert (image.min_disk, image.min_ram, image.visibility) == (1, 64, "private")
    body = client.get(PAGE).content.decode()
    assert "Image cirros uploaded." in body
    response = client.get(f"/dashboard/compute/images/{image.pk}/download/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == data


def test_upload_refusals_are_shown_on_the_form(cloud, client):
    login(client, cloud.member)
    response = client.post(UPLOAD, upload_form(visibility="public"))
    assert response.status_code == 400
    assert not Image.objects.exists()
    response = client.post(UPLOAD, upload_form(name="   "))
    assert response.status_code == 400
    assert (
        "Image name must be" in response.content.decode()
        or "This field is required" in response.content.decode()
    )
    response = client.post(UPLOAD, upload_form(disk_format="aki"))  # container follows the format
    assert response.status_code == 302
    assert Image.objects.get(disk_format="aki").container_format == "aki"


def test_admin_may_publish(cloud, client):
    response = login(client, cloud.admin).post(UPLOAD, upload_form(visibility="public"))
    assert response.status_code == 302
    assert Image.objects.get().visibility == "public"


def test_delete_with_confirm_and_protection(cloud, client):
    image = uploaded_image(cloud.ctx(cloud.member), "alpha-disk")
    protected = uploaded_image(cloud.ctx(cloud.member), "keep-me", protected=True)
    login(client, cloud.member)
    body = client.get(PAGE).content.decode()
    assert 'data-confirm="Delete image alpha-disk?"' in body
    assert client.post(f"/dashboard/compute/images/{image.pk}/delete/").status_code == 302
    assert Image.objects.get(pk=image.pk).status == "deleted"
    client.post(f"/dashboard/compute/images/{protected.pk}/delete/")
    assert "Image keep-me is protected" in client.get(PAGE).content.decode()
    assert Image.objects.get(pk=protected.pk).status == "active"


def test_other_projects_images_are_404(cloud, client):
    image = uploaded_image(cloud.ctx(cloud.member), "alpha-disk")
    login(client, cloud.other_member)
    assert client.get(f"/dashboard/compute/images/{image.pk}/download/").status_code == 404
    assert client.post(f"/dashboard/compute/images/{image.pk}/delete/").status_code == 404
    assert Image.objects.get(pk=image.pk).status == "active"


def test_public_images_show_no_delete_button_to_members(cloud, client):
    uploaded_image(cloud.ctx(cloud.admin), "public-disk", visibility="public")
    body = login(client, cloud.member).get(PAGE).content.decode()
    assert 'data-name="public-disk"' in body and "Delete image public-disk" not in body
    assert "Download" in body


_names = itertools.count()


def more_images(cloud, n):
    admin, member, other = cloud.ctx(cloud.admin), cloud.ctx(cloud.member), cloud.ctx(cloud.other_member)
    for _ in range(n // 3 + 1):
        services.create_image(admin, name=f"pub-{next(_names)}", disk_format="raw", visibility="public")
        uploaded_image(member, f"own-{next(_names)}", data=b"x")
        shared = services.create_image(
            other, name=f"sh-{next(_names)}", disk_format="raw", visibility="shared"
        )
        share_accepted(other, shared, member)
        offered = services.create_image(
            other, name=f"offer-{next(_names)}", disk_format="raw", visibility="shared"
        )
        services.add_image_member(other, offered, cloud.project)


@pytest.mark.parametrize("user", ["member", "admin"])
def test_images_page_queries(cloud, client, django_assert_num_queries, user):
    login(client, getattr(cloud, user))
    uploaded_image(cloud.ctx(cloud.member), "first")
    assert_fixed_queries(
        django_assert_num_queries,
        lambda: client.get(PAGE + "?per_page=100"),
        PAGE_QUERIES,
        grow=lambda: more_images(cloud, MANY),
        rows=page_rows(b'<tr data-name="'),
    )


# --- images other projects offer (issue 16, item 1) -------------------------------------------------


def membership(image) -> str:
    return f"/dashboard/compute/images/{image.pk}/membership/"


def test_member_sees_pending_offers_and_accepts_or_rejects_them(cloud, client):
    other = cloud.ctx(cloud.other_member)
    offered = uploaded_image(other, "beta-offer", visibility="shared")
    spam = uploaded_image(other, "beta-spam", visibility="shared")
    for image in (offered, spam):
        services.add_image_member(other, image, cloud.project)
    login(client, cloud.member)
    body = client.get(PAGE).content.decode()
    assert 'data-pending-name="beta-offer"' in body and 'data-pending-name="beta-spam"' in body
    assert 'data-name="beta-offer"' not in body  # not in the catalogue table until accepted
    response = client.post(membership(offered), {"status": "accepted"})
    assert response.status_code == 302
    response = client.post(membership(spam), {"status": "rejected"})
    assert response.status_code == 302
    body = client.get(PAGE).content.decode()
    assert 'data-name="beta-offer"' in body and 'data-image-action="leave"' in body
    assert 'data-pending-name="beta-spam"' not in body and 'data-name="beta-spam"' not in body
    assert client.post(membership(offered), {"status": "rejected"}).status_code == 302
    assert 'data-name="beta-offer"' not in client.get(PAGE).content.decode()


def test_membership_decisions_are_the_member_projects_own(cloud, client):
    other, member = cloud.ctx(cloud.other_member), cloud.ctx(cloud.member)
    offered = uploaded_image(other, "beta-offer", visibility="shared")
    services.add_image_member(other, offered, cloud.project)
    mine = uploaded_image(member, "alpha-own", visibility="shared")
    login(client, cloud.reader)  # alpha's reader sees the offer, may not decide
    body = client.get(PAGE).content.decode()
    assert 'data-pending-name="beta-offer"' in body and 'data-image-action="accept"' not in body
    client.post(membership(offered), {"status": "accepted"})
    assert not Image.objects.visible_to(member).filter(pk=offered.pk).exists()
    login(client, cloud.member)
    assert client.post(membership(mine), {"status": "accepted"}).status_code == 404
    response = client.post(membership(offered), {"status": "owner"}, follow=True)
    assert "Choose to accept or reject" in response.content.decode()
    login(client, cloud.other_member)  # the owner cannot accept on alpha's behalf
    assert client.post(membership(offered), {"status": "accepted"}).status_code == 404
    assert not Image.objects.visible_to(member).filter(pk=offered.pk).exists()
