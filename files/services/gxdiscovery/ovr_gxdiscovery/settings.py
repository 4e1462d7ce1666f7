"""Settings from the environment (systemd EnvironmentFile=/etc/ovr/edge.env, rendered by roles/edge).

Every variable, its default and meaning is in ENV below and in README.md; `--help` lists them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ovr_common import settings as common_settings
from ovr_common.settings import (
    SettingsError,
    Var,
    absolute_path,
    command,
    load_table,
    log_level,
    number,
    parse_env_file,
)

from .naming import ID_RE

__all__ = ["ENV", "Settings", "SettingsError", "describe", "load_settings", "parse_env_file"]

SECONDS = number(0.0, above=True, unit="a number of seconds")
SECONDS_OR_ZERO = number(0.0, unit="a number of seconds")


def _node_id(var: str, value: str) -> str:
    if not ID_RE.match(value):
        raise SettingsError(
            f"{var}={value!r}: required, lowercase letters, digits, '-' or '_' (set in /etc/ovr/edge.env by roles/edge)"
        )
    return value


def _deployment_id(var: str, value: str) -> str:
    if value and not ID_RE.match(value):
        raise SettingsError(f"{var}={value!r}: lowercase letters, digits, '-' or '_'")
    return value


# name -> Var(variable, default, description, parser)
ENV: dict[str, Var] = {
    "node_id": Var("OVR_NODE_ID", "", "this node's id (required); part of every MQTT client id", _node_id),
    "deployment_id": Var("OVR_DEPLOYMENT_ID", "", "fleet owner; written into gx_systems.json", _deployment_id),
    "inventory": Var("OVR_GX_INVENTORY", "/etc/ovr/gx_inventory.json", "configured GX (input)", absolute_path),
    "systems_file": Var("OVR_GX_SYSTEMS", "/etc/ovr/gx_systems.json", "discovered GX (output; a symlink is followed)",
                        absolute_path),
    "telegraf_config": Var("OVR_TELEGRAF_CONFIG", "/etc/ovr/telegraf.conf", "Telegraf main config (for the check)",
                           absolute_path),
    "telegraf_config_dir": Var("OVR_TELEGRAF_CONFIG_DIR", "/etc/ovr/telegraf.d",
                               "Telegraf fragments; gx_mqtt_sources.conf goes here", absolute_path),
    "telegraf_conf_group": Var("OVR_TELEGRAF_CONF_GROUP", "telegraf",
                               "group of gx_mqtt_sources.conf (0640); empty: keep the file's group",
                               lambda var, value: value or None),
    "state_dir": Var("OVR_GX_STATE_DIR", "/var/lib/ovr/gx-discovery", "per-GX memory between runs (state.json, lock)",
                     absolute_path),
    "telegraf_bin": Var("OVR_TELEGRAF_BIN", "/usr/bin/telegraf", "Telegraf binary for `telegraf config check`"),
    "reload_command": Var("OVR_GX_RELOAD_COMMAND", "systemctl reload telegraf.service",
                          "run (no shell) after gx_mqtt_sources.conf changed; empty: never", command),
    "grace_seconds": Var("OVR_GX_GRACE_SECONDS", "600", "an unreachable GX stays in the outputs this long after it was last seen",
                         SECONDS_OR_ZERO),
    "lost_after_seconds": Var("OVR_GX_LOST_AFTER_SECONDS", "30",
                              "a GX not seen for this long is reported lost (one missed run is not a loss)", SECONDS_OR_ZERO),
    "full_republish_seconds": Var("OVR_GX_FULL_REPUBLISH_SECONDS", "300", "plain keepalive (full republish) at least this often",
                                  SECONDS_OR_ZERO),
    "connect_timeout": Var("OVR_GX_CONNECT_TIMEOUT", "3", "seconds for TCP/TLS connect and CONNACK", SECONDS),
    "serial_timeout": Var("OVR_GX_SERIAL_TIMEOUT", "2",
                          "seconds to wait for the retained N/+/system/0/Serial (and again after a wake-up)", SECONDS),
    "name_timeout": Var("OVR_GX_NAME_TIMEOUT", "4", "seconds to wait for the end of a full republish (CustomName / SystemName)",
                        SECONDS),
    "run_timeout": Var("OVR_GX_RUN_TIMEOUT", "14", "hard limit for all probes of one run (they run in parallel)", SECONDS),
    "log_level": Var("OVR_GX_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR", log_level),
}

CONF_NAME = "gx_mqtt_sources.conf"

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


def load_settings(env: Mapping[str, str]) -> Settings:
    """Settings from the variables (the env file's, then the environment's); SettingsError names
    the variable."""
    return Settings(**load_table(ENV, env))


def describe() -> str:
    """The environment contract, for --help."""
    return common_settings.describe(ENV, "/etc/ovr/edge.env")
