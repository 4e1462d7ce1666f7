"""Settings from the environment (systemd EnvironmentFile=/etc/ovr/cloud.env, rendered by roles/cloud).

Every variable, its default and meaning is in ENV; `python3 -m ovr_fleet --help` lists them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# name -> (variable, default, description)
ENV: dict[str, tuple[str, str, str]] = {
    "db_path": ("OVR_FLEET_DB", "/var/lib/ovr/fleet/fleet.db", "SQLite database shared by API and worker"),
    "operators_file": ("OVR_FLEET_OPERATORS_FILE", "/etc/ovr/secrets/fleet-operators.json",
                       "operators: [{name, hash (bcrypt), role: viewer|admin}]"),
    "vm_url": ("OVR_VM_URL", "http://127.0.0.1:8428", "cloud VictoriaMetrics (reads, end markers)"),
    "vm_timeout": ("OVR_FLEET_VM_TIMEOUT", "5", "seconds per VictoriaMetrics request"),
    "vm_sync_seconds": ("OVR_FLEET_VM_SYNC_SECONDS", "60", "worker: refresh node/deployment/system labels from VM this often"),
    "mqtt_host": ("OVR_MQTT_HOST", "127.0.0.1", "broker (the cloud's loopback listener)"),
    "mqtt_port": ("OVR_MQTT_PORT", "1883", "broker port"),
    "mqtt_username": ("OVR_MQTT_USERNAME", "ovr-fleet", "broker user"),
    "mqtt_password_file": ("OVR_MQTT_PASSWORD_FILE", "/etc/ovr/secrets/mqtt-fleet.password", "broker password file"),
    "default_deployment": ("OVR_FLEET_DEFAULT_DEPLOYMENT", "default",
                           "deployment of nodes that report none (status payload, VM labels)"),
    "stale_seconds": ("OVR_FLEET_STALE_SECONDS", "120", "a node heard from longer ago is shown offline"),
    "gps_stale_seconds": ("OVR_FLEET_GPS_STALE_SECONDS", "1800", "older GPS fixes give way to a manual location"),
    "align_auto": ("OVR_FLEET_ALIGN_AUTO", "0.90", "name similarity (0-1) at or above which an edge event is merged"),
    "align_review": ("OVR_FLEET_ALIGN_REVIEW", "0.80", "similarity at or above which a merge is queued for review"),
    "registry_ended_days": ("OVR_FLEET_REGISTRY_ENDED_DAYS", "30", "ended events stay in the retained registry this long"),
    "node_url_template": ("OVR_FLEET_NODE_URL_TEMPLATE", "", "link to a node's UI, {node_id} and {deployment_id} replaced"),
    "history_max_days": ("OVR_FLEET_HISTORY_MAX_DAYS", "31", "longest history range a query may ask for"),
    "history_max_points": ("OVR_FLEET_HISTORY_MAX_POINTS", "11000", "most points a history query may return per series"),
    "metric_suffix": ("OVR_FLEET_METRIC_SUFFIX", "", "suffix of the cloud's series names (e.g. :10s_avg), none by default"),
    "tiles_limits": ("OVR_FLEET_TILES_LIMITS", "mapbox=750000,esri=2000000", "free tiles per month per provider"),
    "tiles_default_provider": ("OVR_FLEET_TILES_DEFAULT_PROVIDER", "esri", "provider before an operator picks one"),
    "tiles_switch_pct": ("OVR_FLEET_TILES_SWITCH_PCT", "0.95", "share of a provider's limit at which the map switches away"),
    "tiles_disable_pct": ("OVR_FLEET_TILES_DISABLE_PCT", "1.0", "share at which satellite tiles are disabled when all are over"),
    "max_report_bytes": ("OVR_FLEET_MAX_REPORT_BYTES", "4000000", "largest report message accepted"),
    "log_level": ("OVR_FLEET_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR"),
}

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
PROVIDER_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class SettingsError(ValueError):
    """A variable in cloud.env is missing or wrong; the message names it."""


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


def _number(var: str, text: str, minimum: float, maximum: float = math.inf) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{var}={text!r}: expected a number") from None
    if not math.isfinite(value) or not minimum <= value <= maximum:
        raise SettingsError(f"{var}={text!r}: must be between {minimum:g} and {maximum:g}")
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


def load_settings(env: Mapping[str, str]) -> Settings:
    def get(key: str) -> str:
        var, default, _ = ENV[key]
        return env.get(var, default).strip()

    paths = {}
    for key in ("db_path", "operators_file", "mqtt_password_file"):
        text = get(key)
        if not text.startswith("/"):
            raise SettingsError(f"{ENV[key][0]}={text!r}: must be an absolute path")
        paths[key] = Path(text)
    vm_url = get("vm_url").rstrip("/")
    if not re.match(r"^https?://[^/\s]+$", vm_url):
        raise SettingsError(f"OVR_VM_URL={vm_url!r}: expected http://host:port")
    url_template = get("node_url_template")
    if url_template and not re.match(r"^https?://[^/\s?#]+[^\s]*$", url_template):
        raise SettingsError(f"OVR_FLEET_NODE_URL_TEMPLATE={url_template!r}: expected an absolute http(s) URL, "
                            "e.g. https://{node_id}.example.org/ (cloud_fleet_node_url_template)")
    log_level = get("log_level").upper()
    if log_level not in LOG_LEVELS:
        raise SettingsError(f"OVR_FLEET_LOG_LEVEL={log_level!r}: one of {', '.join(LOG_LEVELS)}")
    align_auto = _number("OVR_FLEET_ALIGN_AUTO", get("align_auto"), 0.0, 1.0)
    align_review = _number("OVR_FLEET_ALIGN_REVIEW", get("align_review"), 0.0, 1.0)
    if align_review > align_auto:
        raise SettingsError("OVR_FLEET_ALIGN_REVIEW must not be above OVR_FLEET_ALIGN_AUTO")
    limits = _limits("OVR_FLEET_TILES_LIMITS", get("tiles_limits"))
    default_provider = get("tiles_default_provider")
    if default_provider not in limits:
        raise SettingsError(f"OVR_FLEET_TILES_DEFAULT_PROVIDER={default_provider!r}: one of {', '.join(limits)}")
    suffix = get("metric_suffix")
    if suffix and not re.match(r"^:[a-z0-9_]+$", suffix):
        raise SettingsError(f"OVR_FLEET_METRIC_SUFFIX={suffix!r}: empty or like :10s_avg")
    default_deployment = get("default_deployment")
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", default_deployment):
        raise SettingsError(f"OVR_FLEET_DEFAULT_DEPLOYMENT={default_deployment!r}: letters, digits, '.', '-', '_'")
    return Settings(
        vm_url=vm_url,
        vm_timeout=_number("OVR_FLEET_VM_TIMEOUT", get("vm_timeout"), 0.1, 120),
        vm_sync_seconds=_number("OVR_FLEET_VM_SYNC_SECONDS", get("vm_sync_seconds"), 1),
        mqtt_host=get("mqtt_host"),
        mqtt_port=int(_number("OVR_MQTT_PORT", get("mqtt_port"), 1, 65535)),
        mqtt_username=get("mqtt_username"),
        default_deployment=default_deployment,
        stale_seconds=_number("OVR_FLEET_STALE_SECONDS", get("stale_seconds"), 1),
        gps_stale_seconds=_number("OVR_FLEET_GPS_STALE_SECONDS", get("gps_stale_seconds"), 1),
        align_auto=align_auto,
        align_review=align_review,
        registry_ended_days=_number("OVR_FLEET_REGISTRY_ENDED_DAYS", get("registry_ended_days"), 0),
        node_url_template=url_template,
        history_max_days=_number("OVR_FLEET_HISTORY_MAX_DAYS", get("history_max_days"), 0.01, 3660),
        history_max_points=int(_number("OVR_FLEET_HISTORY_MAX_POINTS", get("history_max_points"), 10, 100000)),
        metric_suffix=suffix,
        tiles_limits=limits,
        tiles_default_provider=default_provider,
        tiles_switch_pct=_number("OVR_FLEET_TILES_SWITCH_PCT", get("tiles_switch_pct"), 0.01, 10),
        tiles_disable_pct=_number("OVR_FLEET_TILES_DISABLE_PCT", get("tiles_disable_pct"), 0.01, 10),
        max_report_bytes=int(_number("OVR_FLEET_MAX_REPORT_BYTES", get("max_report_bytes"), 1024, 64_000_000)),
        log_level=log_level,
        **paths,
    )


def describe() -> str:
    lines = ["environment (from /etc/ovr/cloud.env):"]
    for var, default, text in ENV.values():
        lines.append(f"  {var:<34} {text}" + (f" [default {default!r}]" if default else ""))
    return "\n".join(lines)


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile reads them (comments, optional quotes)."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def settings_from(env_file: Path | None, environ: Mapping[str, str]) -> Settings:
    """The environment wins over the file (as with systemd: the unit's Environment= can override)."""
    merged: dict[str, str] = {}
    if env_file is not None:
        try:
            merged.update(parse_env_file(env_file.read_text()))
        except OSError as exc:
            raise SettingsError(f"{env_file}: {exc.strerror}") from None
    merged.update({k: v for k, v in environ.items() if k.startswith("OVR_")})
    return load_settings(merged)
