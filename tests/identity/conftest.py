"""Fixtures for the identity tests: SSH keys, the objects the API tables act on, policy files."""

import itertools
from dataclasses import dataclass

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from identity.models import KeyPair, Project, Role, RoleAssignment
from tests.factories import KeyPairFactory

from .helpers import openssh_public_key

_policy_files = itertools.count()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """PBKDF2's deliberate slowness costs ~0.3 s per user; these tests check rules, not hashing cost."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def ed25519_key():
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture
def ed25519_public_key(ed25519_key) -> str:
    return openssh_public_key(ed25519_key)


@pytest.fixture(scope="session")
def rsa_1024_public_key() -> str:
    return openssh_public_key(rsa.generate_private_key(public_exponent=65537, key_size=1024))


@pytest.fixture(scope="session")
def rsa_2048_public_key() -> str:
    return openssh_public_key(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@dataclass
class Targets:
    """The objects of project ``alpha`` that the per-role API tables read, change and delete."""

    cloud: object
    keypair: KeyPair
    assignment: RoleAssignment
    member_role: Role

    @property
    def project(self) -> Project:
        return self.cloud.project


@pytest.fixture
def targets(cloud) -> Targets:
    return Targets(
        cloud=cloud,
        keypair=KeyPairFactory(user=cloud.member, name="alice-laptop"),
        assignment=RoleAssignment.objects.get(user=cloud.member, project=cloud.project),
        member_role=Role.objects.get(name=Role.MEMBER),
    )


@pytest.fixture
def policy_file(settings, tmp_path):
    """Write a YAML policy override and point ZENITH_POLICY_FILE at it (a new file each call)."""

    def write(rules: dict[str, str]):
        path = tmp_path / f"policy-{next(_policy_files)}.yaml"
        path.write_text(yaml.safe_dump(rules), encoding="utf-8")
        settings.ZENITH_POLICY_FILE = str(path)
        return path

    return write
