"""Deterministic Mosquitto password hashes, so a password file is changed=0 on a second run.

Mosquitto 2.0 stores `<user>:$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>`, what
`mosquitto_passwd` writes (12-byte salt, 64-byte hash, 101 iterations by default). `mosquitto_passwd`
picks a random salt, so re-running it rewrites the file (and restarts the broker) on every play.
Here the salt is the first 12 bytes of SHA-256(salt_seed): the same password gives the same line,
a changed password a new one, and a seed that names the host and the user still gives every host
and user a salt of its own, which is all a salt has to do.

The one `$7$` implementation for every role (cloud and gxsim brokers);
tests/unit/test_ovr_mosquitto.py checks it against mosquitto_passwd's output and a real broker.
"""

from __future__ import annotations

import base64
import hashlib

from ansible.errors import AnsibleFilterError

ITERATIONS = 101  # mosquitto_passwd's default
SALT_BYTES = 12  # mosquitto_passwd's salt length
HASH_BYTES = 64  # SHA-512's output, as mosquitto_passwd stores it


def mosquitto_pbkdf2(password: str, salt: bytes, iterations: int = ITERATIONS) -> str:
    """The `$7$` field for ``password`` with a given salt (what mosquitto_passwd computes)."""
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(iterations), HASH_BYTES)
    return f"$7${int(iterations)}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def ovr_mosquitto_hash(password: str, salt_seed: str, iterations: int = ITERATIONS) -> str:
    """`password | ovr_mosquitto_hash(seed)`: the `$7$` field, salted from ``seed``."""
    if not isinstance(password, str) or not password:
        raise AnsibleFilterError("ovr_mosquitto_hash: the password must be a non-empty string")
    if not isinstance(salt_seed, str) or not salt_seed:
        raise AnsibleFilterError("ovr_mosquitto_hash: the salt seed must be a non-empty string (host and user name)")
    salt = hashlib.sha256(salt_seed.encode()).digest()[:SALT_BYTES]
    return mosquitto_pbkdf2(password, salt, iterations)


class FilterModule:
    def filters(self) -> dict:
        return {"ovr_mosquitto_hash": ovr_mosquitto_hash}
