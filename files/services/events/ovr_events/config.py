"""Settings from /etc/ovr/edge.env (rendered by roles/edge) or the process environment.

The environment wins over the file, so a developer can override one value by hand. Every
setting has a default that fits the edge layout; the role writes the OVR_EVENTS_* lines.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class ConfigError(ValueError):
    """A setting is unusable; the message names the variable and what to fix."""


@dataclass(frozen=True)
class Settings:
    node_id: str = "edge"
    deployment_id: str = ""
    gx_systems: Path = Path("/etc/ovr/gx_systems.json")
    gx_inventory: Path = Path("/etc/ovr/gx_inventory.json")
    vm_url: str = "http://127.0.0.1:8428"
    vmagent_url: str = "http://127.0.0.1:8429"
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    data_dir: Path = Path("/var/lib/ovr/events")
    run_dir: Path = Path("/run/ovr-events")
    users_file: Path = Path("/etc/ovr/events_users.json")
    control_file: Path = Path("/etc/ovr/events_control.json")
    public_read: bool = True
    stale_seconds: float = 60.0
    confirm_timeout: float = 20.0
    heartbeat_seconds: float = 10.0
    summary_seconds: float = 5.0
    snapshot_seconds: float = 0.5
    report_delay_seconds: float = 30.0
    report_retry_seconds: float = 30.0
    report_retry_max_seconds: float = 1800.0
    photo_max_bytes: int = 10 * 1024 * 1024
    vm_timeout: float = 10.0
    log_level: str = "INFO"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "events.db"

    @property
    def photos_dir(self) -> Path:
        return self.data_dir / "photos"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def snapshot_path(self) -> Path:
        return self.run_dir / "realtime.json"

    @property
    def wake_socket(self) -> Path:
        return self.run_dir / "wake.sock"


# Settings field -> environment variable.
ENV: dict[str, str] = {
    "node_id": "OVR_NODE_ID",
    "deployment_id": "OVR_DEPLOYMENT_ID",
    "gx_systems": "OVR_GX_SYSTEMS",
    "gx_inventory": "OVR_GX_INVENTORY",
    "vm_url": "OVR_VM_URL",
    "vmagent_url": "OVR_VMAGENT_URL",
    "mqtt_host": "OVR_EVENTS_MQTT_HOST",
    "mqtt_port": "OVR_EVENTS_MQTT_PORT",
    "data_dir": "OVR_EVENTS_DATA_DIR",
    "run_dir": "OVR_EVENTS_RUN_DIR",
    "users_file": "OVR_EVENTS_USERS_FILE",
    "control_file": "OVR_EVENTS_CONTROL_FILE",
    "public_read": "OVR_EVENTS_PUBLIC_READ",
    "stale_seconds": "OVR_EVENTS_STALE_SECONDS",
    "confirm_timeout": "OVR_EVENTS_CONFIRM_TIMEOUT",
    "heartbeat_seconds": "OVR_EVENTS_HEARTBEAT_SECONDS",
    "summary_seconds": "OVR_EVENTS_SUMMARY_SECONDS",
    "snapshot_seconds": "OVR_EVENTS_SNAPSHOT_SECONDS",
    "report_delay_seconds": "OVR_EVENTS_REPORT_DELAY_SECONDS",
    "report_retry_seconds": "OVR_EVENTS_REPORT_RETRY_SECONDS",
    "report_retry_max_seconds": "OVR_EVENTS_REPORT_RETRY_MAX_SECONDS",
    "photo_max_bytes": "OVR_EVENTS_PHOTO_MAX_BYTES",
    "vm_timeout": "OVR_EVENTS_VM_TIMEOUT",
    "log_level": "OVR_EVENTS_LOG_LEVEL",
}


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines; '#' comments, optional quotes. A missing file is an empty mapping."""
    out: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def _convert(name: str, kind: Any, raw: str) -> Any:
    var = ENV[name]
    if kind is bool or kind == "bool":
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{var}: expected true/false, got {raw!r}")
    if kind in (int, "int"):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{var}: expected an integer, got {raw!r}") from None
    if kind in (float, "float"):
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{var}: expected a number, got {raw!r}") from None
        if value <= 0:
            raise ConfigError(f"{var}: must be > 0, got {raw!r}")
        return value
    if kind in (Path, "Path"):
        return Path(raw)
    return raw


def load_settings(env_file: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the env file (default $OVR_EVENTS_ENV_FILE or /etc/ovr/edge.env) + environment."""
    environ = os.environ if environ is None else environ
    if env_file is None:
        env_file = Path(environ.get("OVR_EVENTS_ENV_FILE", "/etc/ovr/edge.env"))
    merged = {**read_env_file(env_file), **{k: v for k, v in environ.items() if k.startswith("OVR_")}}
    values: dict[str, Any] = {}
    for f in fields(Settings):
        var = ENV[f.name]
        if var in merged and merged[var] != "":
            values[f.name] = _convert(f.name, f.type, merged[var])
    settings = Settings(**values)
    if not ID_RE.match(settings.node_id):
        raise ConfigError(f"OVR_NODE_ID: must match {ID_RE.pattern}, got {settings.node_id!r}")
    if settings.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"OVR_EVENTS_LOG_LEVEL: expected DEBUG, INFO, WARNING or ERROR, got {settings.log_level!r}")
    return settings
