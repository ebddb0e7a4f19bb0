"""SSH key handling: validate imported OpenSSH public keys, generate new pairs, fingerprints."""

import base64
import hashlib

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from .errors import InvalidInput

GENERATED_TYPES = ("ed25519", "rsa")
MIN_RSA_BITS = 2048


def fingerprint(public_key: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key line (as ``ssh-keygen -l`` prints it)."""
    blob = base64.b64decode(public_key.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def normalise_public_key(text: str) -> str:
    """Validate an OpenSSH public key line and return it trimmed; InvalidInput says what is wrong."""
    line = (text or "").strip()
    if not line or "\n" in line:
        raise InvalidInput("The public key must be one line in OpenSSH format (ssh-ed25519 AAAA... comment).")
    try:
        key = serialization.load_ssh_public_key(line.encode())
    except (ValueError, UnsupportedAlgorithm, IndexError) as exc:
        raise InvalidInput(f"The public key is not a valid OpenSSH public key: {exc}.") from None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise InvalidInput(f"RSA keys must have at least {MIN_RSA_BITS} bits; this one has {key.key_size}.")
    if not isinstance(key, (rsa.RSAPublicKey, ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey)):
        raise InvalidInput("Only ssh-ed25519, ssh-rsa and ecdsa-sha2 keys are accepted.")
    return line


def generate(key_type: str, comment: str) -> tuple[str, str]:
    """Generate a key pair; returns (OpenSSH public key line, OpenSSH private key PEM)."""
    if key_type == "ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
    elif key_type == "rsa":
        private = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    else:
        raise InvalidInput(f"Key type must be one of: {', '.join(GENERATED_TYPES)}.")
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    return f"{public.decode()} {comment}".strip(), pem.decode()
