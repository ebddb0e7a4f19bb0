"""The flavors admin page: list, create (errors shown on the form), delete; 403 for non-admins."""

import re

import pytest

from compute import services
from compute.models import Flavor

from .conftest import make_flavor

PAGE = "/dashboard/compute/admin/flavors/"
FORM = {
    "name": "c1.custom",
    "vcpus": "2",
    "ram_mb": "4096",
    "disk_gb": "40",
    "ephemeral_gb": "0",
    "swap_mb": "0",
    "is_public": "on",
    "description": "",
    "extra_specs": "hw:cpu_policy=dedicated\n\nquota:cpu_shares = 1024",
}


@pytest.fixture
def admin_browser(client, cloud):
    client.force_login(cloud.admin)
    return client


def test_admin_sees_every_flavor_and_the_menu_entry(cloud, admin_browser, flavors):
    page = admin_browser.get(PAGE)
    assert page.status_code == 200
    html = page.content.decode()
    assert "m1.small" in html and "secret.big" in html
    assert 'id="flavor-form"' in html
    assert 'href="/dashboard/compute/admin/flavors/"' in html  # the Admin menu links here


def test_admin_creates_a_flavor(cloud, admin_browser):
    response = admin_browser.post(PAGE, FORM, follow=True)
    assert response.redirect_chain == [(PAGE, 302)]
    assert "Flavor c1.custom created." in response.content.decode()
    flavor = Flavor.objects.get(name="c1.custom")
    assert (flavor.vcpus, flavor.ram_mb, flavor.disk_gb, flavor.is_public) == (2, 4096, 40, True)
    assert flavor.extra_specs == {"hw:cpu_policy": "dedicated", "quota:cpu_shares": "1024"}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"name": "m1.small"}, "A flavor named &#x27;m1.small&#x27; already exists."),
        ({"vcpus": "0"}, "vCPUs must be a whole number from 1 to 1024."),
        ({"ram_mb": "10"}, "RAM (MB) must be a whole number from 64"),
        ({"extra_specs": "no equals sign"}, "Line 1 is not key=value."),
        ({"vcpus": "two"}, "Enter a whole number."),
    ],
)
def test_create_errors_are_shown_on_the_form(cloud, admin_browser, flavors, change, message):
    response = admin_browser.post(PAGE, {**FORM, **change})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert Flavor.objects.count() == 2


def test_admin_deletes_a_flavor(cloud, admin_browser, flavors):
    response = admin_browser.post(f"{PAGE}{flavors.private.pk}/delete/", follow=True)
    assert "Flavor secret.big deleted." in response.content.decode()
    assert not Flavor.objects.filter(pk=flavors.private.pk).exists()


def test_deleting_an_unknown_flavor_is_a_404(cloud, admin_browser, flavors):
    flavor = make_flavor("doomed")
    flavor.delete()
    assert admin_browser.post(f"{PAGE}{flavor.pk}/delete/").status_code == 404


def test_deleting_is_post_only(cloud, admin_browser, flavors):
    assert admin_browser.get(f"{PAGE}{flavors.public.pk}/delete/").status_code == 405
    assert Flavor.objects.filter(pk=flavors.public.pk).exists()


@pytest.mark.parametrize("who", ["member", "reader", "other_member"])
def test_non_admins_get_403_and_no_menu_entry(cloud, client, flavors, who):
    client.force_login(getattr(cloud, who))
    assert client.get(PAGE).status_code == 403
    assert client.post(PAGE, FORM).status_code == 403
    assert client.post(f"{PAGE}{flavors.public.pk}/delete/").status_code == 403
    assert not Flavor.objects.filter(name="c1.custom").exists()
    assert Flavor.objects.filter(pk=flavors.public.pk).exists()
    assert b'href="/dashboard/compute/admin/flavors/"' not in client.get("/dashboard/overview/").content


def test_anonymous_is_sent_to_login(client, cloud):
    response = client.get(PAGE)
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_django_admin_lists_flavors_and_access(cloud, client, flavors):
    services.add_flavor_access(cloud.ctx(cloud.admin), flavors.private, cloud.project)
    cloud.admin.is_superuser = cloud.admin.is_staff = True
    cloud.admin.save()
    client.force_login(cloud.admin)
    assert b"secret.big" in client.get("/django-admin/compute/flavor/?q=secret").content
    assert client.get(f"/django-admin/compute/flavor/{flavors.private.pk}/change/").status_code == 200
    assert b"alpha" in client.get("/django-admin/compute/flavoraccess/").content


def test_every_bad_value_is_named_not_only_the_first(cloud, admin_browser, flavors):
    response = admin_browser.post(PAGE, {**FORM, "name": "bad name!", "vcpus": "0", "ram_mb": "10"})
    html = response.content.decode()
    for message in (
        "Flavor name must be 1-64 characters",
        "vCPUs must be a whole number from 1 to 1024.",
        "RAM (MB) must be a whole number from 64",
    ):
        assert message in html, message
    assert Flavor.objects.count() == 2


def test_flavors_are_listed_by_size(cloud, admin_browser):
    for name, vcpus, ram in (
        ("a.huge", 16, 65536),
        ("b.tiny", 1, 512),
        ("c.mid", 4, 8192),
        ("d.small", 1, 2048),
    ):
        make_flavor(name, vcpus=vcpus, ram_mb=ram)
    html = admin_browser.get(PAGE).content.decode()
    names = re.findall(r'data-name="([a-z.]+)"', html)
    assert names == ["b.tiny", "d.small", "c.mid", "a.huge"]
