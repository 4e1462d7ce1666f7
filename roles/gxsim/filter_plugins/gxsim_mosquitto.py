"""Deterministic Mosquitto password hashes, so the password file is idempotent.

Mosquitto 2.0 stores `<user>:$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>`
(what `mosquitto_passwd` writes). `mosquitto_passwd` picks a random salt, so re-running it
changes the file on every play; here the 12-byte salt comes from a seed (host + user name),
so the same password gives the same line and a changed password gives a new one.
"""

from __future__ import annotations

import base64
import hashlib

ITERATIONS = 101  # mosquitto_passwd's default
SALT_BYTES = 12  # mosquitto_passwd's salt length
HASH_BYTES = 64


def gxsim_mosquitto_hash(password: str, salt_seed: str, iterations: int = ITERATIONS) -> str:
    if not isinstance(password, str) or not password:
        raise ValueError("gxsim_mosquitto_hash: the password must be a non-empty string")
    salt = hashlib.sha256(f"ovr-gxsim:{salt_seed}".encode()).digest()[:SALT_BYTES]
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, HASH_BYTES)
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


class FilterModule:
    def filters(self) -> dict:
        return {"gxsim_mosquitto_hash": gxsim_mosquitto_hash}
