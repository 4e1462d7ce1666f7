"""Settings from the environment (systemd EnvironmentFile=/etc/ovr/cloud.env, rendered by roles/cloud).

Every variable, its default and meaning is in ENV; `python3 -m ovr_fleet --help` lists them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ovr_common import settings as common_settings
from ovr_common.settings import (
    SettingsError,
    Var,
    absolute_path,
    integer,
    load_table,
    log_level,
    naming_file,
    number,
    parse_env_file,
    settings_env,
)

__all__ = ["ENV", "Settings", "SettingsError", "describe", "load_settings", "parse_env_file", "settings_from"]

PROVIDER_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def _vm_url(var: str, value: str) -> str:
    url = value.rstrip("/")
    if not re.match(r"^https?://[^/\s]+$", url):
        raise SettingsError(f"{var}={url!r}: expected http://host:port")
    return url


def _url_template(var: str, value: str) -> str:
    if value and not re.match(r"^https?://[^/\s?#]+[^\s]*$", value):
        raise SettingsError(f"{var}={value!r}: expected an absolute http(s) URL, "
                            "e.g. https://{node_id}.example.org/ (cloud_fleet_node_url_template)")
    return value


def _suffix(var: str, value: str) -> str:
    if value and not re.match(r"^:[a-z0-9_]+$", value):
        raise SettingsError(f"{var}={value!r}: empty or like :10s_avg")
    return value


def _deployment(var: str, value: str) -> str:
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", value):
        raise SettingsError(f"{var}={value!r}: letters, digits, '.', '-', '_'")
    return value


def _limits(var: str, text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if not PROVIDER_RE.match(name.strip()) or not value.strip().isdigit():
            raise SettingsError(f"{var}={text!r}: expected provider=tiles,... (e.g. mapbox=750000,esri=2000000)")
        out[name.strip()] = int(value)
    if not out:
        raise SettingsError(f"{var}: name at least one provider")
    return out


SHARE = number(0.0, 1.0)
PCT = number(0.01, 10)

# name -> Var(variable, default, description, parser)
ENV: dict[str, Var] = {
    "db_path": Var("OVR_FLEET_DB", "/var/lib/ovr/fleet/fleet.db", "SQLite database shared by API and worker", absolute_path),
    "operators_file": Var("OVR_FLEET_OPERATORS_FILE", "/etc/ovr/secrets/fleet-operators.json",
                          "operators: [{name, hash (bcrypt), role: viewer|admin}]", absolute_path),
    "vm_url": Var("OVR_VM_URL", "http://127.0.0.1:8428", "cloud VictoriaMetrics (reads, end markers)", _vm_url),
    "vm_timeout": Var("OVR_FLEET_VM_TIMEOUT", "5", "seconds per VictoriaMetrics request", number(0.1, 120)),
    "vm_sync_seconds": Var("OVR_FLEET_VM_SYNC_SECONDS", "60", "worker: refresh node/deployment/system labels from VM this often",
                           number(1)),
    "mqtt_host": Var("OVR_MQTT_HOST", "127.0.0.1", "broker (the cloud's loopback listener)"),
    "mqtt_port": Var("OVR_MQTT_PORT", "1883", "broker port", integer(1, 65535)),
    "mqtt_username": Var("OVR_MQTT_USERNAME", "ovr-fleet", "broker user"),
    "mqtt_password_file": Var("OVR_MQTT_PASSWORD_FILE", "/etc/ovr/secrets/mqtt-fleet.password", "broker password file",
                              absolute_path),
    "default_deployment": Var("OVR_FLEET_DEFAULT_DEPLOYMENT", "default",
                              "deployment of nodes that report none (status payload, VM labels)", _deployment),
    "stale_seconds": Var("OVR_FLEET_STALE_SECONDS", "120", "a node heard from longer ago is shown offline", number(1)),
    "gps_stale_seconds": Var("OVR_FLEET_GPS_STALE_SECONDS", "1800", "older GPS fixes give way to a manual location", number(1)),
    "align_auto": Var("OVR_FLEET_ALIGN_AUTO", "0.90", "name similarity (0-1) at or above which an edge event is merged", SHARE),
    "align_review": Var("OVR_FLEET_ALIGN_REVIEW", "0.80", "similarity at or above which a merge is queued for review", SHARE),
    "registry_ended_days": Var("OVR_FLEET_REGISTRY_ENDED_DAYS", "30", "ended events stay in the retained registry this long",
                               number(0)),
    "node_url_template": Var("OVR_FLEET_NODE_URL_TEMPLATE", "", "link to a node's UI, {node_id} and {deployment_id} replaced",
                             _url_template),
    "history_max_days": Var("OVR_FLEET_HISTORY_MAX_DAYS", "31", "longest history range a query may ask for", number(0.01, 3660)),
    "history_max_points": Var("OVR_FLEET_HISTORY_MAX_POINTS", "11000", "most points a history query may return per series",
                              integer(10, 100000)),
    "metric_suffix": Var("OVR_FLEET_METRIC_SUFFIX", "", "suffix of the cloud's series names (e.g. :10s_avg), none by default",
                         _suffix),
    "tiles_limits": Var("OVR_FLEET_TILES_LIMITS", "mapbox=750000,esri=2000000", "free tiles per month per provider", _limits),
    "tiles_default_provider": Var("OVR_FLEET_TILES_DEFAULT_PROVIDER", "esri", "provider before an operator picks one"),
    "tiles_switch_pct": Var("OVR_FLEET_TILES_SWITCH_PCT", "0.95", "share of a provider's limit at which the map switches away", PCT),
    "tiles_disable_pct": Var("OVR_FLEET_TILES_DISABLE_PCT", "1.0", "share at which satellite tiles are disabled when all are over",
                             PCT),
    "max_report_bytes": Var("OVR_FLEET_MAX_REPORT_BYTES", "4000000", "largest report message accepted", integer(1024, 64_000_000)),
    "log_level": Var("OVR_FLEET_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR", log_level),
}


@dataclass(frozen=True)
class Settings:
    db_path: Path
    operators_file: Path
    vm_url: str
    vm_timeout: float
    vm_sync_seconds: float
    mqtt_host: str
    mqtt_port: int
    mqtt_username: str
    mqtt_password_file: Path
    default_deployment: str
    stale_seconds: float
    gps_stale_seconds: float
    align_auto: float
    align_review: float
    registry_ended_days: float
    node_url_template: str
    history_max_days: float
    history_max_points: int
    metric_suffix: str
    tiles_limits: dict[str, int]
    tiles_default_provider: str
    tiles_switch_pct: float
    tiles_disable_pct: float
    max_report_bytes: int
    log_level: str

    def mqtt_password(self) -> str:
        try:
            return self.mqtt_password_file.read_text().strip()
        except OSError as exc:
            raise SettingsError(f"OVR_MQTT_PASSWORD_FILE={self.mqtt_password_file}: {exc.strerror}") from None


def load_settings(env: Mapping[str, str]) -> Settings:
    values = load_table(ENV, env)
    if values["align_review"] > values["align_auto"]:
        raise SettingsError("OVR_FLEET_ALIGN_REVIEW must not be above OVR_FLEET_ALIGN_AUTO")
    if values["tiles_default_provider"] not in values["tiles_limits"]:
        raise SettingsError(f"OVR_FLEET_TILES_DEFAULT_PROVIDER={values['tiles_default_provider']!r}: "
                            f"one of {', '.join(values['tiles_limits'])}")
    return Settings(**values)


def describe() -> str:
    return common_settings.describe(ENV, "/etc/ovr/cloud.env", width=34)


def settings_from(env_file: Path | None, environ: Mapping[str, str]) -> Settings:
    """The environment wins over the file (as with systemd: the unit's Environment= can override).
    An error names the variable and the file."""
    merged = settings_env(env_file, environ)
    return naming_file(env_file, lambda: load_settings(merged))
