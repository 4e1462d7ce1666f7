"""Deterministic bcrypt hashes for the cloud's Caddy, so a second run is changed=0.

`caddy hash-password` picks a random salt, which rewrites the files (and reloads the daemons) on
every play. Here the salt comes from a seed (host + user name): the same password gives the same
hash, a changed password gives a new one. The salt still differs per host and user, which is all a
salt has to do.

- cloud_bcrypt_hash: bcrypt `$2b$` as Caddy's `basicauth` reads it. Needs the `bcrypt` package on
  the controller (requirements.txt).

Mosquitto's `$7$` hash is `ovr_mosquitto_hash` (plugins/filter/ovr_mosquitto.py), shared with gxsim.
"""

from __future__ import annotations

import base64
import hashlib

from ansible.errors import AnsibleFilterError

_STD_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BCRYPT_B64 = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


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


class FilterModule:
    def filters(self) -> dict:
        return {"cloud_bcrypt_hash": cloud_bcrypt_hash}
