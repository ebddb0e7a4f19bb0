"""Image sharing with the member's consent (issue 16, item 1), as Glance does it: a membership is
``pending`` until the member project accepts it; only accepted shares are listed, resolvable by name
and bootable; the member rejects or leaves; the owner sees every member with its status. Across
projects: alpha (``member``) owns images, beta (``other``) is offered them."""

from __future__ import annotations

import pytest

from compute import services
from compute.models import Image, ImageMember
from identity.errors import Conflict, InvalidInput, NotFound, PolicyDenied
from tests.identity.helpers import error_of
from tests.identity.test_query_counts import MANY, api_rows, assert_fixed_queries

from .conftest import make_flavor
from .image_helpers import uploaded_image

BASE = "/api/v1/compute/images/"
API_LIST_QUERIES = 4  # token, caller's roles, COUNT, page


def url(image, suffix: str = "") -> str:
    return f"{BASE}{image.pk}/{suffix}"


@pytest.fixture
def offer(cloud):
    """alpha's shared image ``alpha-shared`` offered to beta (pending)."""
    member = cloud.ctx(cloud.member)
    image = uploaded_image(member, "alpha-shared", visibility="shared")
    services.add_image_member(member, image, cloud.other_project)
    return image


def visible(ctx, image) -> bool:
    return Image.objects.visible_to(ctx).filter(pk=image.pk).exists()


# --- services ---------------------------------------------------------------------------------------


def test_a_new_membership_is_pending_and_out_of_the_members_catalogue(cloud, offer):
    other = cloud.ctx(cloud.other_member)
    member = ImageMember.objects.get(image=offer, project=cloud.other_project)
    assert member.status == ImageMember.PENDING
    assert not visible(other, offer)
    assert list(Image.objects.offered_to(other, (ImageMember.PENDING,))) == [offer]
    # The owner sees who it is offered to, and in which state.
    rows = services.list_image_members(cloud.ctx(cloud.member), offer)
    assert [(r.project, r.status) for r in rows] == [(cloud.other_project, "pending")]


def test_accept_reject_and_leave(cloud, offer):
    other = cloud.ctx(cloud.other_member)
    services.set_image_member_status(other, offer, cloud.other_project, "accepted")
    assert visible(other, offer)
    services.set_image_member_status(other, offer, cloud.other_project, "rejected")
    assert not visible(other, offer)
    assert list(Image.objects.offered_to(other, (ImageMember.REJECTED,))) == [offer]
    # A rejected membership stays: the owner cannot push the image again.
    with pytest.raises(Conflict, match="already shared"):
        services.add_image_member(cloud.ctx(cloud.member), offer, cloud.other_project)
    with pytest.raises(InvalidInput, match="Member status"):
        services.set_image_member_status(other, offer, cloud.other_project, "owned")


def test_only_the_member_project_decides(cloud, offer):
    member, reader = cloud.ctx(cloud.member), cloud.ctx(cloud.reader)
    # The owner cannot accept for beta, nor can alpha's members decide for themselves (not offered).
    with pytest.raises(PolicyDenied, match="member project decides"):
        services.set_image_member_status(member, offer, cloud.other_project, "accepted")
    with pytest.raises(NotFound):
        services.set_image_member_status(member, offer, cloud.project, "accepted")
    with pytest.raises(PolicyDenied):
        services.set_image_member_status(reader, offer, cloud.project, "accepted")
    assert ImageMember.objects.get(image=offer).status == ImageMember.PENDING


def test_launch_by_name_ignores_pending_and_rejected_shares(cloud, offer):
    """The squatting attack: an image pushed into beta and named like beta's own does not take its place."""
    other = cloud.ctx(cloud.other_member)
    flavor = make_flavor("m1.tiny", ram_mb=512, disk_gb=1)
    services.update_image(cloud.ctx(cloud.member), offer, name="beta-disk")
    own = uploaded_image(other, "beta-disk")
    instance, _ = services.create_instance(other, name="vm", flavor=flavor.name, image="beta-disk")
    assert instance.image_id == own.pk
    with pytest.raises(InvalidInput, match="No image"):
        services.create_instance(other, name="vm2", flavor=flavor.name, image=str(offer.pk))
    services.set_image_member_status(other, offer, cloud.other_project, "accepted")
    with pytest.raises(InvalidInput, match="More than one image"):
        services.create_instance(other, name="vm3", flavor=flavor.name, image="beta-disk")
    instance, _ = services.create_instance(other, name="vm4", flavor=flavor.name, image=str(offer.pk))
    assert instance.image_id == offer.pk


# --- API ----------------------------------------------------------------------------------------


def names(client, query: str = "") -> list[str]:
    response = client.get(BASE + query)
    assert response.status_code == 200, response.content
    return sorted(row["name"] for row in response.json()["results"])


def test_api_member_lists_pending_shares_and_accepts(cloud, clients, offer):
    beta = clients["other"]
    assert names(beta) == []
    assert beta.get(url(offer)).status_code == 404
    assert names(beta, "?member_status=pending") == ["alpha-shared"]
    assert names(beta, "?member_status=all") == ["alpha-shared"]
    assert names(beta, "?member_status=rejected") == []
    response = beta.put(
        url(offer, f"members/{cloud.other_project.pk}/"), {"status": "accepted"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "accepted"
    assert names(beta) == ["alpha-shared"]
    assert names(beta, "?member_status=pending") == []
    assert beta.get(url(offer)).status_code == 200
    # The member sees its own membership, not the owner's list of members.
    mine = beta.get(url(offer, f"members/{cloud.other_project.pk}/"))
    assert mine.status_code == 200 and mine.json()["status"] == "accepted"
    assert beta.get(url(offer, "members/")).status_code == 403


def test_api_member_leaves_and_the_owner_sees_it(cloud, clients, offer):
    beta, alpha = clients["other"], clients["member"]
    member_url = url(offer, f"members/{cloud.other_project.pk}/")
    beta.put(member_url, {"status": "accepted"}, format="json")
    assert beta.delete(member_url).status_code == 204
    assert names(beta) == []
    assert names(beta, "?member_status=rejected") == ["alpha-shared"]
    rows = alpha.get(url(offer, "members/")).json()
    assert [(r["project"], r["status"]) for r in rows] == [(str(cloud.other_project.pk), "rejected")]
    # The owner can neither decide for beta nor push the image again; it can remove the membership.
    response = alpha.put(member_url, {"status": "accepted"}, format="json")
    assert response.status_code == 403, response.content
    response = alpha.post(url(offer, "members/"), {"project": str(cloud.other_project.pk)}, format="json")
    assert response.status_code == 409
    assert alpha.delete(member_url).status_code == 204
    assert beta.get(member_url).status_code == 404


def test_api_membership_errors(cloud, clients, offer):
    beta, alpha = clients["other"], clients["member"]
    member_url = url(offer, f"members/{cloud.other_project.pk}/")
    for body in ({"status": "owner"}, {}, {"status": "accepted", "extra": 1}, {"status": 5}):
        response = beta.put(member_url, body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert error_of(response)["code"]
    assert beta.get(BASE + "?member_status=maybe").status_code == 400
    # Not offered to alpha's own project: nothing to decide. Unknown project: 404.
    assert (
        alpha.put(url(offer, f"members/{cloud.project.pk}/"), {"status": "accepted"}, "json").status_code
        == 404
    )
    assert beta.put(url(offer, f"members/{'f' * 32}/"), {"status": "accepted"}, "json").status_code == 404
    # An image not offered to beta at all stays unknown to it.
    private = uploaded_image(cloud.ctx(cloud.member), "alpha-private")
    assert (
        beta.put(
            url(private, f"members/{cloud.other_project.pk}/"), {"status": "accepted"}, "json"
        ).status_code
        == 404
    )
    assert clients["anonymous"].put(member_url, {"status": "accepted"}, format="json").status_code == 401


def test_api_reader_of_the_member_project_cannot_decide(cloud, clients):
    """alpha's reader may see what is offered to alpha, not accept it."""
    other = cloud.ctx(cloud.other_member)
    image = uploaded_image(other, "beta-shared", visibility="shared")
    services.add_image_member(other, image, cloud.project)
    reader = clients["reader"]
    assert names(reader, "?member_status=pending") == ["beta-shared"]
    response = reader.put(url(image, f"members/{cloud.project.pk}/"), {"status": "accepted"}, format="json")
    assert response.status_code == 403
    response = clients["member"].put(
        url(image, f"members/{cloud.project.pk}/"), {"status": "accepted"}, "json"
    )
    assert response.status_code == 200
    assert names(reader) == ["beta-shared"]


def test_pending_list_and_member_detail_queries(cloud, clients, offer, django_assert_num_queries):
    other = cloud.ctx(cloud.other_member)

    def more_offers(n_offers=MANY):
        for _ in range(n_offers):
            n = ImageMember.objects.count()
            image = services.create_image(other, name=f"offer-{n}", disk_format="raw", visibility="shared")
            services.add_image_member(other, image, cloud.project)

    more_offers(1)
    assert_fixed_queries(
        django_assert_num_queries,
        lambda: clients["member"].get(BASE + "?member_status=pending"),
        API_LIST_QUERIES,
        grow=more_offers,
        rows=api_rows,
    )
    member_url = url(offer, f"members/{cloud.other_project.pk}/")
    clients["other"].get(member_url)
    # token, roles, the image (not visible), the image (offered), the project, the membership
    with django_assert_num_queries(6):
        assert clients["other"].get(member_url).status_code == 200
