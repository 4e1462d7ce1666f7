"""Settings from the environment (systemd EnvironmentFile=/etc/ovr/edge.env, rendered by roles/edge).

Every variable, its default and meaning is in ENV below and in README.md; `--help` lists them.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .naming import ID_RE

# name -> (variable, default, description)
ENV: dict[str, tuple[str, str, str]] = {
    "node_id": ("OVR_NODE_ID", "", "this node's id (required); part of every MQTT client id"),
    "deployment_id": ("OVR_DEPLOYMENT_ID", "", "fleet owner; written into gx_systems.json"),
    "inventory": ("OVR_GX_INVENTORY", "/etc/ovr/gx_inventory.json", "configured GX (input)"),
    "systems_file": ("OVR_GX_SYSTEMS", "/etc/ovr/gx_systems.json", "discovered GX (output; a symlink is followed)"),
    "telegraf_config": ("OVR_TELEGRAF_CONFIG", "/etc/ovr/telegraf.conf", "Telegraf main config (for the check)"),
    "telegraf_config_dir": ("OVR_TELEGRAF_CONFIG_DIR", "/etc/ovr/telegraf.d", "Telegraf fragments; gx_mqtt_sources.conf goes here"),
    "telegraf_conf_group": ("OVR_TELEGRAF_CONF_GROUP", "telegraf", "group of gx_mqtt_sources.conf (0640); empty: keep the file's group"),
    "state_dir": ("OVR_GX_STATE_DIR", "/var/lib/ovr/gx-discovery", "per-GX memory between runs (state.json, lock)"),
    "telegraf_bin": ("OVR_TELEGRAF_BIN", "/usr/bin/telegraf", "Telegraf binary for `telegraf config check`"),
    "reload_command": ("OVR_GX_RELOAD_COMMAND", "systemctl reload telegraf.service",
                       "run (no shell) after gx_mqtt_sources.conf changed; empty: never"),
    "grace_seconds": ("OVR_GX_GRACE_SECONDS", "600", "an unreachable GX stays in the outputs this long after it was last seen"),
    "lost_after_seconds": ("OVR_GX_LOST_AFTER_SECONDS", "30",
                           "a GX not seen for this long is reported lost (one missed run is not a loss)"),
    "full_republish_seconds": ("OVR_GX_FULL_REPUBLISH_SECONDS", "300", "plain keepalive (full republish) at least this often"),
    "connect_timeout": ("OVR_GX_CONNECT_TIMEOUT", "3", "seconds for TCP/TLS connect and CONNACK"),
    "serial_timeout": ("OVR_GX_SERIAL_TIMEOUT", "2", "seconds to wait for the retained N/+/system/0/Serial (and again after a wake-up)"),
    "name_timeout": ("OVR_GX_NAME_TIMEOUT", "4", "seconds to wait for the end of a full republish (CustomName / SystemName)"),
    "run_timeout": ("OVR_GX_RUN_TIMEOUT", "14", "hard limit for all probes of one run (they run in parallel)"),
    "log_level": ("OVR_GX_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR"),
}

CONF_NAME = "gx_mqtt_sources.conf"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class SettingsError(ValueError):
    """A variable in edge.env is missing or wrong; the message names it."""


@dataclass(frozen=True)
class Settings:
    node_id: str
    deployment_id: str
    inventory: Path
    systems_file: Path
    telegraf_config: Path
    telegraf_config_dir: Path
    telegraf_conf_group: str | None
    state_dir: Path
    telegraf_bin: str
    reload_command: tuple[str, ...]
    grace_seconds: float
    lost_after_seconds: float
    full_republish_seconds: float
    connect_timeout: float
    serial_timeout: float
    name_timeout: float
    run_timeout: float
    log_level: str

    @property
    def telegraf_conf(self) -> Path:
        return self.telegraf_config_dir / CONF_NAME

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"


def _number(var: str, text: str, minimum: float, allow_equal: bool = True) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{var}={text!r}: expected a number of seconds") from None
    if not math.isfinite(value) or value < minimum or (value == minimum and not allow_equal):
        raise SettingsError(f"{var}={text!r}: must be {'>=' if allow_equal else '>'} {minimum:g}")
    return value


def load_settings(env: Mapping[str, str]) -> Settings:
    def get(key: str) -> str:
        var, default, _ = ENV[key]
        return env.get(var, default).strip()

    node_id = get("node_id")
    if not ID_RE.match(node_id):
        raise SettingsError(
            f"OVR_NODE_ID={node_id!r}: required, lowercase letters, digits, '-' or '_' (set in /etc/ovr/edge.env by roles/edge)"
        )
    deployment_id = get("deployment_id")
    if deployment_id and not ID_RE.match(deployment_id):
        raise SettingsError(f"OVR_DEPLOYMENT_ID={deployment_id!r}: lowercase letters, digits, '-' or '_'")
    paths = {}
    for key in ("inventory", "systems_file", "telegraf_config", "telegraf_config_dir", "state_dir"):
        text = get(key)
        if not text.startswith("/"):
            raise SettingsError(f"{ENV[key][0]}={text!r}: must be an absolute path")
        paths[key] = Path(text)
    try:
        reload_command = tuple(shlex.split(get("reload_command")))
    except ValueError as exc:
        raise SettingsError(f"OVR_GX_RELOAD_COMMAND: {exc}") from None
    log_level = get("log_level").upper()
    if log_level not in LOG_LEVELS:
        raise SettingsError(f"OVR_GX_LOG_LEVEL={log_level!r}: one of {', '.join(LOG_LEVELS)}")
    secs = {
        key: _number(ENV[key][0], get(key), 0.0, allow_equal=key in ("grace_seconds", "lost_after_seconds", "full_republish_seconds"))
        for key in ("grace_seconds", "lost_after_seconds", "full_republish_seconds",
                    "connect_timeout", "serial_timeout", "name_timeout", "run_timeout")
    }
    return Settings(
        node_id=node_id,
        deployment_id=deployment_id,
        telegraf_conf_group=get("telegraf_conf_group") or None,
        telegraf_bin=get("telegraf_bin"),
        reload_command=reload_command,
        log_level=log_level,
        **paths,
        **secs,
    )


def describe() -> str:
    """The environment contract, for --help."""
    lines = ["environment (from /etc/ovr/edge.env):"]
    for var, default, text in ENV.values():
        lines.append(f"  {var:<32} {text}" + (f" [default {default!r}]" if default else ""))
    return "\n".join(lines)


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile reads them (comments, optional quotes)."""
    result: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if key.startswith("export "):
            key = key[len("export "):].strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        result[key] = value
    return result
