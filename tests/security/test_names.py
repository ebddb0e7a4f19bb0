"""Invisible characters in names (issue 16, item 5): the right-to-left override, the BOM and other
format characters were accepted, so ``prod\u202egpj.exe`` listed as something else than it is. One
validator (identity.names.clean_name) serves every name field; here each field is tried, through the
API where it has one."""

from __future__ import annotations

import pytest

from compute import services as compute
from identity import services as identity
from identity.errors import InvalidInput
from identity.names import clean_name, invisible_characters
from tests.identity.helpers import error_of

INVISIBLE = [
    "\u202e",  # right-to-left override
    "\ufeff",  # byte order mark / zero-width no-break space
    "\u200b",  # zero-width space
    "\u200d",  # zero-width joiner
    "\u2066",  # left-to-right isolate
    "\u00ad",  # soft hyphen
    "\u2028",  # line separator
    "\x07",  # a control character
    "\ue000",  # private use
]


@pytest.mark.parametrize("char", INVISIBLE)
def test_the_validator_refuses_invisible_characters(char):
    with pytest.raises(InvalidInput, match="invisible or control characters"):
        clean_name(f"prod{char}gpj.exe", "Image")
    assert invisible_characters(f"a{char}b{char}") == [f"U+{ord(char):04X}"]


def test_ordinary_unicode_names_stay_valid():
    for name in ("Ubuntu 24.04", "débian-ümlaut", "日本語のイメージ", "emoji 🚀", "עברית", "مرحبا"):
        assert clean_name(f"  {name} ", "Image") == name


@pytest.mark.parametrize("char", ["\u202e", "\ufeff"])
def test_every_name_field_refuses_them(cloud, clients, char):
    member, admin = clients["member"], clients["admin"]
    bad = f"evil{char}name"
    attempts = {
        "image": member.post("/api/v1/compute/images/", {"name": bad, "disk_format": "raw"}, format="json"),
        "instance": member.post(
            "/api/v1/compute/instances/", {"name": bad, "flavor": "x", "image": "y"}, format="json"
        ),
        "keypair": member.post("/api/v1/identity/keypairs/", {"name": bad}, format="json"),
        "project": admin.post("/api/v1/identity/projects/", {"name": bad}, format="json"),
        "user": admin.post(
            "/api/v1/identity/users/", {"name": bad, "username": bad, "password": "x" * 12}, "json"
        ),
        "flavor": admin.post(
            "/api/v1/compute/flavors/", {"name": bad, "vcpus": 1, "ram_mb": 512, "disk_gb": 1}, format="json"
        ),
    }
    for field, response in attempts.items():
        assert response.status_code == 400, (field, response.content)
        error_of(response)
    assert "invisible" in error_of(attempts["image"])["message"]
    assert "invisible" in error_of(attempts["instance"])["message"]
    # Renames go through the same validator.
    image = compute.create_image(cloud.ctx(cloud.member), name="fine", disk_format="raw")
    with pytest.raises(InvalidInput, match="invisible"):
        compute.update_image(cloud.ctx(cloud.member), image, name=bad)
    with pytest.raises(InvalidInput, match="Key pair name"):  # its ASCII alphabet refuses them first
        identity.create_keypair(cloud.ctx(cloud.member), name=bad)
