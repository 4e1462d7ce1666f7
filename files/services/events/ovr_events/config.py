"""Settings from /etc/ovr/edge.env (rendered by roles/edge) or the process environment.

The environment wins over the file, so a developer can override one value by hand. Every
setting has a default that fits the edge layout; the role writes the OVR_EVENTS_* lines.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ovr_common import settings as common_settings
from ovr_common.protocol import NODE_ID_RE as ID_RE
from ovr_common.settings import (
    Parser,
    SettingsError,
    Var,
    boolean,
    integer,
    load_table,
    log_level,
    naming_file,
    number,
    settings_env,
    text,
)

# A setting is unusable; the message names the variable (and the file) and what to fix.
ConfigError = SettingsError


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
    # The local broker takes no anonymous client (roles/edge): the worker's user and the file
    # holding its password. Empty: connect without credentials (a test broker).
    mqtt_username: str = ""
    mqtt_password_file: str = ""
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

    def mqtt_password(self) -> str | None:
        """The local broker password from OVR_EVENTS_MQTT_PASSWORD_FILE, None without a user."""
        if not self.mqtt_username:
            return None
        if not self.mqtt_password_file:
            raise ConfigError("OVR_EVENTS_MQTT_USERNAME is set but OVR_EVENTS_MQTT_PASSWORD_FILE is not: "
                              "name the file holding the local broker password (roles/edge writes both)")
        try:
            password = Path(self.mqtt_password_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"OVR_EVENTS_MQTT_PASSWORD_FILE={self.mqtt_password_file}: {exc.strerror}") from None
        if not password:
            raise ConfigError(f"OVR_EVENTS_MQTT_PASSWORD_FILE={self.mqtt_password_file} is empty")
        return password

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


def _path(var: str, value: str) -> Path:
    return Path(value)


def _node_id(var: str, value: str) -> str:
    if not ID_RE.match(value):
        raise ConfigError(f"{var}: must match {ID_RE.pattern}, got {value!r}")
    return value


POSITIVE = number(0.0, above=True)
_DEFAULTS = Settings()

# Settings field -> (environment variable, parser, meaning); the defaults are the dataclass's.
_VARS: dict[str, tuple[str, Parser, str]] = {
    "node_id": ("OVR_NODE_ID", _node_id, "this node's id (labels, topics)"),
    "deployment_id": ("OVR_DEPLOYMENT_ID", text, "fleet owner (labels, status)"),
    "gx_systems": ("OVR_GX_SYSTEMS", _path, "discovered GX (gxdiscovery's output)"),
    "gx_inventory": ("OVR_GX_INVENTORY", _path, "configured GX: host, TLS, user, password file"),
    "vm_url": ("OVR_VM_URL", text, "edge VictoriaMetrics (report reads)"),
    "vmagent_url": ("OVR_VMAGENT_URL", text, "local vmagent (ovr_event_active writes)"),
    "mqtt_host": ("OVR_EVENTS_MQTT_HOST", text, "local broker (bridged to the cloud)"),
    "mqtt_port": ("OVR_EVENTS_MQTT_PORT", integer(strict=True), "local broker port"),
    "mqtt_username": ("OVR_EVENTS_MQTT_USERNAME", text, "local broker user (empty: none)"),
    "mqtt_password_file": ("OVR_EVENTS_MQTT_PASSWORD_FILE", text, "file with that user's password"),
    "data_dir": ("OVR_EVENTS_DATA_DIR", _path, "SQLite, photos, reports, session key"),
    "run_dir": ("OVR_EVENTS_RUN_DIR", _path, "the worker's snapshot and wake socket"),
    "users_file": ("OVR_EVENTS_USERS_FILE", _path, "hashed users (users-sync writes it)"),
    "control_file": ("OVR_EVENTS_CONTROL_FILE", _path, "GX control limits"),
    "public_read": ("OVR_EVENTS_PUBLIC_READ", boolean, "reads without login on the LAN"),
    "stale_seconds": ("OVR_EVENTS_STALE_SECONDS", POSITIVE, "a GX silent this long is stale"),
    "confirm_timeout": ("OVR_EVENTS_CONFIRM_TIMEOUT", POSITIVE, "a GX write not echoed by then is a timeout"),
    "heartbeat_seconds": ("OVR_EVENTS_HEARTBEAT_SECONDS", POSITIVE, "ovr_event_active period"),
    "summary_seconds": ("OVR_EVENTS_SUMMARY_SECONDS", POSITIVE, "realtime summary to the cloud period"),
    "snapshot_seconds": ("OVR_EVENTS_SNAPSHOT_SECONDS", POSITIVE, "snapshot period"),
    "report_delay_seconds": ("OVR_EVENTS_REPORT_DELAY_SECONDS", POSITIVE, "wait after an event ends before reading VM"),
    "report_retry_seconds": ("OVR_EVENTS_REPORT_RETRY_SECONDS", POSITIVE, "first report retry until the cloud acks"),
    "report_retry_max_seconds": ("OVR_EVENTS_REPORT_RETRY_MAX_SECONDS", POSITIVE, "longest report retry interval"),
    "photo_max_bytes": ("OVR_EVENTS_PHOTO_MAX_BYTES", integer(strict=True), "largest photo"),
    "vm_timeout": ("OVR_EVENTS_VM_TIMEOUT", POSITIVE, "seconds per VictoriaMetrics request"),
    "log_level": ("OVR_EVENTS_LOG_LEVEL", log_level, "DEBUG, INFO, WARNING or ERROR"),
}
TABLE: dict[str, Var] = {name: Var(var, str(getattr(_DEFAULTS, name)), meaning, parse)
                         for name, (var, parse, meaning) in _VARS.items()}
# Settings field -> environment variable.
ENV: dict[str, str] = {name: entry.var for name, entry in TABLE.items()}


def load_settings(env_file: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the env file (default $OVR_EVENTS_ENV_FILE or /etc/ovr/edge.env) + environment.
    A missing file is no error (every setting has a default); an empty value takes the default."""
    environ = os.environ if environ is None else environ
    if env_file is None:
        env_file = Path(environ.get("OVR_EVENTS_ENV_FILE", "/etc/ovr/edge.env"))
    merged = settings_env(env_file, environ, missing_ok=True)
    return naming_file(env_file, lambda: Settings(**load_table(TABLE, merged, empty_is_default=True)))


def describe() -> str:
    """The environment contract, for --help."""
    return common_settings.describe(TABLE, "/etc/ovr/edge.env", width=36)
