"""Configuration from the command line, with defaults from GXSIM_* environment variables.

A command-line flag wins over the environment, so a systemd EnvironmentFile sets the
defaults and a developer can still override one thing by hand.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .engine import Disappearance, parse_disappear
from .profile import DEFAULT_PROFILE

PORTAL_ID_RE = re.compile(r"^[0-9a-f]{12}$")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

# name -> (env var, default, help)
ENV = {
    "broker_host": ("GXSIM_BROKER_HOST", "127.0.0.1", "MQTT broker host"),
    "broker_port": ("GXSIM_BROKER_PORT", "1883", "MQTT broker port"),
    "username": ("GXSIM_USERNAME", "", "MQTT username (empty: anonymous)"),
    "password": ("GXSIM_PASSWORD", "", "MQTT password (prefer the env var to the flag)"),
    "client_id": ("GXSIM_CLIENT_ID", "", "MQTT client id (default ovr-gxsim-<portal id>)"),
    "portal_id": ("GXSIM_PORTAL_ID", "c0ffee000001", "VRM portal id, 12 hex characters"),
    "profile": ("GXSIM_PROFILE", str(DEFAULT_PROFILE), "device profile JSON file"),
    "keepalive_timeout": ("GXSIM_KEEPALIVE_TIMEOUT", "60", "seconds a keepalive lasts"),
    "heartbeat_interval": ("GXSIM_HEARTBEAT_INTERVAL", "3", "seconds between heartbeats"),
    "seed": ("GXSIM_SEED", "1", "random seed (same seed, same values)"),
    "load_rate": ("GXSIM_LOAD_RATE", "0", "benchmark mode: value changes per second (0: off)"),
    "chaos": ("GXSIM_CHAOS", "false", "also publish malformed payloads"),
    "chaos_interval": ("GXSIM_CHAOS_INTERVAL", "1", "seconds between malformed payloads"),
    "disappear": (
        "GXSIM_DISAPPEAR",
        "",
        "devices that vanish: service/instance@after_s[+back_after_s],...",
    ),
    "log_level": ("GXSIM_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR"),
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Config:
    broker_host: str
    broker_port: int
    username: str | None
    password: str | None
    client_id: str
    portal_id: str
    profile: Path
    keepalive_timeout: float
    heartbeat_interval: float
    seed: int
    load_rate: float
    chaos: bool
    chaos_interval: float
    disappear: tuple[Disappearance, ...]
    log_level: str


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _positive(allow_zero: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from exc
        if value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(f"must be {'>= 0' if allow_zero else '> 0'}")
        return value

    return parse


def _portal_id(text: str) -> str:
    value = text.strip().lower()
    if not PORTAL_ID_RE.match(value):
        raise argparse.ArgumentTypeError(
            f"portal id must be 12 hex characters like be300d83ff04, got {text!r}"
        )
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from exc
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"port {value} out of range 1..65535")
    return value


def _log_level(text: str) -> str:
    value = text.strip().upper()
    if value not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return value


def _disappear(text: str) -> tuple[Disappearance, ...]:
    try:
        return tuple(parse_disappear(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    def default(name: str) -> str:
        var, fallback, _ = ENV[name]
        return env.get(var, fallback)

    def helptext(name: str) -> str:
        var, _, text = ENV[name]
        return f"{text} [env {var}, now {default(name)!r}]" if name != "password" else (
            f"{text} [env {var}]"
        )

    p = argparse.ArgumentParser(
        prog="python3 -m ovr_gxsim",
        description="Venus OS GX simulator: publishes like dbus-flashmq on a GX.",
    )
    p.add_argument("--broker-host", default=default("broker_host"), help=helptext("broker_host"))
    p.add_argument("--broker-port", type=_port, default=default("broker_port"),
                   help=helptext("broker_port"))
    p.add_argument("--username", default=default("username"), help=helptext("username"))
    p.add_argument("--password", default=default("password"), help=helptext("password"))
    p.add_argument("--client-id", default=default("client_id"), help=helptext("client_id"))
    p.add_argument("--portal-id", type=_portal_id, default=default("portal_id"),
                   help=helptext("portal_id"))
    p.add_argument("--profile", type=Path, default=default("profile"), help=helptext("profile"))
    p.add_argument("--keepalive-timeout", type=_positive(), default=default("keepalive_timeout"),
                   help=helptext("keepalive_timeout"))
    p.add_argument("--heartbeat-interval", type=_positive(),
                   default=default("heartbeat_interval"), help=helptext("heartbeat_interval"))
    p.add_argument("--seed", type=int, default=default("seed"), help=helptext("seed"))
    p.add_argument("--load-rate", type=_positive(allow_zero=True),
                   default=default("load_rate"), help=helptext("load_rate"))
    p.add_argument("--chaos", type=_bool, nargs="?", const=True, default=default("chaos"),
                   help=helptext("chaos"))
    p.add_argument("--chaos-interval", type=_positive(), default=default("chaos_interval"),
                   help=helptext("chaos_interval"))
    p.add_argument("--disappear", type=_disappear, default=default("disappear"),
                   help=helptext("disappear"))
    p.add_argument("--log-level", type=_log_level, default=default("log_level"),
                   help=helptext("log_level"))
    return p


def parse_config(argv: Sequence[str], env: Mapping[str, str]) -> Config:
    """Parse; on bad input argparse prints the problem and exits with status 2."""
    ns = build_parser(env).parse_args(list(argv))
    # argparse applies `type` to string defaults too, so env values are checked the same way.
    return Config(
        broker_host=ns.broker_host,
        broker_port=ns.broker_port,
        username=ns.username or None,
        password=ns.password or None,
        client_id=ns.client_id or f"ovr-gxsim-{ns.portal_id}",
        portal_id=ns.portal_id,
        profile=ns.profile,
        keepalive_timeout=ns.keepalive_timeout,
        heartbeat_interval=ns.heartbeat_interval,
        seed=ns.seed,
        load_rate=ns.load_rate,
        chaos=ns.chaos,
        chaos_interval=ns.chaos_interval,
        disappear=ns.disappear,
        log_level=ns.log_level,
    )
