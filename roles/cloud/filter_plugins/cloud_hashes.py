"""Deterministic password hashes for the cloud's Caddy and Mosquitto, so a second run is changed=0.

`caddy hash-password` and `mosquitto_passwd` pick a random salt, which rewrites the files (and
reloads the daemons) on every play. Here the salt comes from a seed (host + user name): the same
password gives the same hash, a changed password gives a new one. The salt still differs per
host and user, which is all a salt has to do.

- cloud_bcrypt_hash: bcrypt `$2b$` as Caddy's `basicauth` reads it. Needs the `bcrypt` package on
  the controller (requirements.txt).
- cloud_mosquitto_hash: Mosquitto 2.0's `$7$` PBKDF2-HMAC-SHA512 (what `mosquitto_passwd` writes).
"""

from __future__ import annotations

import base64
import hashlib

from ansible.errors import AnsibleFilterError

_STD_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BCRYPT_B64 = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

MOSQUITTO_ITERATIONS = 101  # mosquitto_passwd's default
MOSQUITTO_SALT_BYTES = 12
MOSQUITTO_HASH_BYTES = 64


def _check(password: object, name: str) -> bytes:
    if not isinstance(password, str) or not password:
        raise AnsibleFilterError(f"{name}: the password must be a non-empty string")
    return password.encode()


def cloud_bcrypt_hash(password: str, salt_seed: str, cost: int = 10) -> str:
    secret = _check(password, "cloud_bcrypt_hash")
    if len(secret) > 72:
        raise AnsibleFilterError("cloud_bcrypt_hash: bcrypt uses at most 72 bytes of a password; use a shorter one")
    try:
        import bcrypt
    except ImportError as exc:
        raise AnsibleFilterError(
            "cloud_bcrypt_hash needs the Python package 'bcrypt' on the controller: "
            "pip install -r requirements.txt (or make venv)"
        ) from exc
    raw = hashlib.sha256(f"ovr-cloud-bcrypt:{salt_seed}".encode()).digest()[:16]
    # bcrypt's base64 is the standard one with another alphabet; 16 bytes -> 22 characters.
    salt = base64.b64encode(raw)[:22].translate(bytes.maketrans(_STD_B64, _BCRYPT_B64))
    return bcrypt.hashpw(secret, b"$2b$%02d$" % int(cost) + salt).decode()


def cloud_mosquitto_hash(password: str, salt_seed: str, iterations: int = MOSQUITTO_ITERATIONS) -> str:
    secret = _check(password, "cloud_mosquitto_hash")
    salt = hashlib.sha256(f"ovr-cloud-mosquitto:{salt_seed}".encode()).digest()[:MOSQUITTO_SALT_BYTES]
    digest = hashlib.pbkdf2_hmac("sha512", secret, salt, iterations, MOSQUITTO_HASH_BYTES)
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


class FilterModule:
    def filters(self) -> dict:
        return {"cloud_bcrypt_hash": cloud_bcrypt_hash, "cloud_mosquitto_hash": cloud_mosquitto_hash}
