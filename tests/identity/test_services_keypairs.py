"""identity.services.create_keypair / delete_keypair: generate, import, validate, fingerprint."""

import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from identity import services
from identity.errors import Conflict, InvalidInput, PolicyDenied
from identity.models import KeyPair
from tests.factories import KeyPairFactory

from .helpers import openssh_public_key, ssh_fingerprint


def public_line_of(private_key) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


@pytest.mark.parametrize(
    "key_type, key_class", [("ed25519", ed25519.Ed25519PrivateKey), ("rsa", rsa.RSAPrivateKey)]
)
def test_generated_pair_returns_a_private_key_that_matches_the_stored_public_key(cloud, key_type, key_class):
    created = services.create_keypair(cloud.ctx(cloud.member), name="laptop", key_type=key_type)

    assert created.private_key.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    private = serialization.load_ssh_private_key(created.private_key.encode(), password=None)
    assert isinstance(private, key_class)
    if key_type == "rsa":
        assert private.key_size >= 2048
    stored = KeyPair.objects.get(pk=created.keypair.pk)
    assert stored.public_key.split()[:2] == public_line_of(private).split()
    assert stored.public_key.endswith(" laptop@zenith")
    assert stored.fingerprint == ssh_fingerprint(stored.public_key)
    assert stored.user == cloud.member
    # Zenith keeps only the public half.
    assert created.private_key not in {getattr(stored, f.attname) for f in KeyPair._meta.concrete_fields}


def test_two_generated_pairs_differ(cloud):
    ctx = cloud.ctx(cloud.member)
    first = services.create_keypair(ctx, name="a")
    second = services.create_keypair(ctx, name="b")
    assert first.keypair.public_key.split()[1] != second.keypair.public_key.split()[1]
    assert first.private_key != second.private_key


def test_unknown_generated_key_type_is_invalid(cloud):
    with pytest.raises(InvalidInput, match="Key type must be one of"):
        services.create_keypair(cloud.ctx(cloud.member), name="k", key_type="dsa")
    assert not KeyPair.objects.exists()


@pytest.mark.parametrize(
    "make_key",
    [
        lambda: ed25519.Ed25519PrivateKey.generate(),
        lambda: ec.generate_private_key(ec.SECP256R1()),
    ],
    ids=["ed25519", "ecdsa-p256"],
)
def test_import_keeps_the_key_and_no_private_key_is_returned(cloud, make_key):
    line = openssh_public_key(make_key(), comment="me@laptop")
    created = services.create_keypair(cloud.ctx(cloud.member), name="imported", public_key=f"  {line}\n")
    assert created.private_key is None
    assert created.keypair.public_key == line
    assert created.keypair.fingerprint == ssh_fingerprint(line)


def test_import_rsa_2048(cloud, rsa_2048_public_key):
    created = services.create_keypair(cloud.ctx(cloud.member), name="rsa", public_key=rsa_2048_public_key)
    assert created.keypair.public_key.startswith("ssh-rsa ")


def test_fingerprint_is_what_ssh_keygen_prints(cloud, ed25519_public_key, tmp_path):
    created = services.create_keypair(cloud.ctx(cloud.member), name="k", public_key=ed25519_public_key)
    expected = ssh_fingerprint(ed25519_public_key)
    assert created.keypair.fingerprint == expected
    assert expected.startswith("SHA256:") and not expected.endswith("=")
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed; the independent computation above still ran")
    key_file = tmp_path / "key.pub"
    key_file.write_text(ed25519_public_key + "\n")
    printed = subprocess.run(
        ["ssh-keygen", "-lf", str(key_file)], check=True, capture_output=True, text=True
    ).stdout.split()
    assert printed[1] == created.keypair.fingerprint


@pytest.mark.parametrize(
    "text",
    [
        "not a key",
        "ssh-ed25519",
        "ssh-ed25519 !!!notbase64!!!",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN2Lan6Qis",  # truncated blob
        "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIN2Lan6QisVsk+OLMPsfbFAmGEtixwf3pyLPJ6lSTNYE",  # type mismatch
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN2Lan6QisVsk+OLMPsfbFAmGEtixwf3pyLPJ6lSTNYE a\nssh-ed25519 x",
    ],
    ids=["prose", "no-blob", "bad-base64", "truncated", "type-mismatch", "private-key", "two-lines"],
)
def test_invalid_public_key_is_invalid_input(cloud, text):
    with pytest.raises(InvalidInput):
        services.create_keypair(cloud.ctx(cloud.member), name="bad", public_key=text)
    assert not KeyPair.objects.exists()


@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
def test_dsa_key_is_refused_naming_the_accepted_types(cloud):
    dsa = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.dsa")
    line = openssh_public_key(dsa.generate_private_key(key_size=1024))
    with pytest.raises(InvalidInput, match="Only ssh-ed25519, ssh-rsa and ecdsa-sha2 keys are accepted"):
        services.create_keypair(cloud.ctx(cloud.member), name="old", public_key=line)
    assert not KeyPair.objects.exists()


def test_rsa_1024_is_refused_naming_the_minimum(cloud, rsa_1024_public_key):
    with pytest.raises(InvalidInput, match="at least 2048 bits; this one has 1024"):
        services.create_keypair(cloud.ctx(cloud.member), name="weak", public_key=rsa_1024_public_key)
    assert not KeyPair.objects.exists()


def test_duplicate_name_for_the_same_user_is_a_conflict(cloud, ed25519_public_key):
    ctx = cloud.ctx(cloud.member)
    services.create_keypair(ctx, name="laptop")
    with pytest.raises(Conflict, match="already have a key pair named 'laptop'"):
        services.create_keypair(ctx, name=" laptop ", public_key=ed25519_public_key)
    assert cloud.member.keypairs.count() == 1


def test_same_name_for_another_user_is_fine(cloud):
    services.create_keypair(cloud.ctx(cloud.member), name="laptop")
    services.create_keypair(cloud.ctx(cloud.other_member), name="laptop")
    assert KeyPair.objects.filter(name="laptop").count() == 2


@pytest.mark.parametrize("name", ["", "   ", "bad/name", "new\nline", "x" * 256])
def test_key_pair_name_is_validated(cloud, name):
    with pytest.raises(InvalidInput, match="Key pair name"):
        services.create_keypair(cloud.ctx(cloud.member), name=name)


def test_reader_cannot_create_a_key_pair(cloud, ed25519_public_key):
    with pytest.raises(PolicyDenied):
        services.create_keypair(cloud.ctx(cloud.reader), name="k")
    with pytest.raises(PolicyDenied):
        services.create_keypair(cloud.ctx(cloud.reader), name="k", public_key=ed25519_public_key)
    assert not KeyPair.objects.exists()


def test_owner_deletes_their_key_pair_and_others_cannot(cloud):
    keypair = KeyPairFactory(user=cloud.member)
    with pytest.raises(PolicyDenied):
        services.delete_keypair(cloud.ctx(cloud.reader), keypair)
    with pytest.raises(PolicyDenied):
        services.delete_keypair(cloud.ctx(cloud.other_member), keypair)
    assert KeyPair.objects.filter(pk=keypair.pk).exists()
    services.delete_keypair(cloud.ctx(cloud.member), keypair)
    assert not KeyPair.objects.filter(pk=keypair.pk).exists()
