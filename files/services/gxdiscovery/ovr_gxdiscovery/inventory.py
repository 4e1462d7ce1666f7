"""gx_inventory.json: the GX this node reads, as rendered by roles/edge from the inventory.

Format (the role writes the object form; a bare list is accepted too):

    {"systems": [
      {"name": "main", "host": "192.168.1.50", "port": 1883, "tls": false},
      {"name": "aft", "host": "venus-2.local", "port": 8883, "tls": true,
       "ca_file": "/etc/ovr/gx-ca.pem", "insecure_skip_verify": false,
       "username": "ovr", "password_file": "/etc/ovr/secrets/gx-aft.password",
       "system_id": "aft-bank", "portal_id": "c0619ab68e54"}
    ]}

Every problem is reported with the file, the entry number and name, and what to fix.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .naming import ID_RE

HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")
# Venus portal ids are 12 hex characters; allow any topic-safe token so an odd one still works.
PORTAL_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
KEYS = {
    "name", "host", "port", "tls", "ca_file", "insecure_skip_verify",
    "username", "password_file", "system_id", "portal_id",
}


class InventoryError(ValueError):
    """gx_inventory.json is unusable; the message names the file, the entry and the fix."""


@dataclass(frozen=True)
class GxConfig:
    name: str
    host: str
    port: int
    tls: bool = False
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    username: str | None = None
    password_file: str | None = None
    system_id: str | None = None  # override of the discovered name
    portal_id: str | None = None  # pin: only this portal is accepted on that broker

    @property
    def url(self) -> str:
        """Server URL as Telegraf's mqtt_consumer wants it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'ssl' if self.tls else 'tcp'}://{host}:{self.port}"

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _valid_host(host: str) -> bool:
    if HOSTNAME_RE.match(host):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _clean_text(value: str) -> bool:
    return value != "" and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)


def parse_entry(raw: Any, where: str) -> GxConfig:
    if not isinstance(raw, dict):
        raise InventoryError(f"{where}: must be an object with name and host, got {type(raw).__name__}")
    name = raw.get("name")
    if not isinstance(name, str) or not ID_RE.match(name):
        raise InventoryError(
            f"{where}: 'name' must be lowercase letters, digits, '-' or '_' (at most 63, starting with a"
            f" letter or digit), got {name!r}"
        )
    where = f"{where} ({name!r})"
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise InventoryError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(KEYS))}")

    def opt_bool(key: str) -> bool:
        value = raw.get(key, False)
        if not isinstance(value, bool):
            raise InventoryError(f"{where}: '{key}' must be true or false, got {value!r}")
        return value

    def opt_path(key: str) -> str | None:
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.startswith("/") or not _clean_text(value):
            raise InventoryError(f"{where}: '{key}' must be an absolute path, got {value!r}")
        return value

    host = raw.get("host")
    if not isinstance(host, str) or not _valid_host(host):
        raise InventoryError(f"{where}: 'host' must be a hostname or an IP address, got {host!r}")
    tls = opt_bool("tls")
    port = raw.get("port", 8883 if tls else 1883)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise InventoryError(f"{where}: 'port' must be an integer 1..65535, got {port!r}")
    insecure = opt_bool("insecure_skip_verify")
    ca_file = opt_path("ca_file")
    if (ca_file or insecure) and not tls:
        raise InventoryError(f"{where}: 'ca_file' and 'insecure_skip_verify' need \"tls\": true")
    username = raw.get("username")
    if username is not None and (not isinstance(username, str) or not _clean_text(username)):
        raise InventoryError(f"{where}: 'username' must be a non-empty string without control characters")
    password_file = opt_path("password_file")
    if password_file and username is None:
        raise InventoryError(f"{where}: 'password_file' needs a 'username' (Venus OS accepts any username)")
    system_id = raw.get("system_id")
    if system_id is not None and (not isinstance(system_id, str) or not ID_RE.match(system_id)):
        raise InventoryError(
            f"{where}: 'system_id' must be lowercase letters, digits, '-' or '_' (at most 63, starting"
            f" with a letter or digit), got {system_id!r}"
        )
    portal_id = raw.get("portal_id")
    if portal_id is not None and (not isinstance(portal_id, str) or not PORTAL_RE.match(portal_id)):
        raise InventoryError(f"{where}: 'portal_id' must be the GX's VRM portal id like c0619ab68e54, got {portal_id!r}")
    return GxConfig(
        name=name,
        host=host,
        port=port,
        tls=tls,
        ca_file=ca_file,
        insecure_skip_verify=insecure,
        username=username,
        password_file=password_file,
        system_id=system_id,
        portal_id=portal_id,
    )


def parse_inventory(doc: Any, source: str) -> list[GxConfig]:
    entries = doc["systems"] if isinstance(doc, dict) and set(doc) == {"systems"} else doc
    if not isinstance(entries, list):
        raise InventoryError(f"{source}: must be {{\"systems\": [...]}} or a list of GX objects")
    result = [parse_entry(e, f"{source}: entry {i + 1}") for i, e in enumerate(entries)]

    def unique(label: str, key: Any) -> None:
        seen: dict[Any, str] = {}
        for gx in result:
            value = key(gx)
            if value is None:
                continue
            if value in seen:
                raise InventoryError(f"{source}: GX {seen[value]!r} and {gx.name!r} have the same {label} {value!r}")
            seen[value] = gx.name

    unique("name", lambda g: g.name)
    unique("host and port", lambda g: (g.host.lower(), g.port))
    unique("system_id", lambda g: g.system_id)
    unique("portal_id", lambda g: g.portal_id)
    return result


def load_inventory(path: Path) -> list[GxConfig]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InventoryError(f"{path}: not found (roles/edge renders it from edge_gx_systems)") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"{path}: cannot read: {exc}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InventoryError(f"{path}: not valid JSON: {exc}") from exc
    return parse_inventory(doc, str(path))


def read_password(gx: GxConfig) -> str | None:
    """The password from password_file (one line; a trailing newline is dropped).

    Raises OSError/ValueError with a message that names the file but never its content."""
    if not gx.password_file:
        return None
    with open(gx.password_file, "rb") as fh:
        data = fh.read(4097)
    if len(data) > 4096:
        raise ValueError(f"password_file {gx.password_file} is larger than 4 KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # `from None`: the decode error would quote bytes of the secret.
        raise ValueError(f"password_file {gx.password_file} is not UTF-8") from None
    if text.endswith("\n"):
        text = text[:-1]
    if text.endswith("\r"):
        text = text[:-1]
    if text == "" or "\n" in text:
        raise ValueError(f"password_file {gx.password_file} must hold exactly one non-empty line")
    return text
