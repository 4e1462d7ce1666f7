"""The unit and timer the role installs: valid for systemd, hardened, and consistent with the code."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest
from ovr_gxdiscovery.settings import ENV
from units import render_unit


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("units")
    for name in ("ovr-refresh-gx-mqtt-sources.service", "ovr-refresh-gx-mqtt-sources.timer"):
        (out / name).write_text(render_unit("edge", name))
    return out


@pytest.fixture(scope="module")
def SERVICE(rendered: Path) -> Path:
    return rendered / "ovr-refresh-gx-mqtt-sources.service"


@pytest.fixture(scope="module")
def TIMER(rendered: Path) -> Path:
    return rendered / "ovr-refresh-gx-mqtt-sources.timer"


def directives(path: Path) -> dict[str, list[str]]:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    out: dict[str, list[str]] = {}
    section = ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key}", []).append(value)
    return out


def test_systemd_accepts_the_units(SERVICE: Path, TIMER: Path) -> None:
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(SERVICE), str(TIMER)],
                          capture_output=True, text=True, timeout=60, check=False)
    # python3 may be missing on a build host; everything else must verify cleanly.
    problems = [ln for ln in proc.stderr.splitlines() if ln.strip() and "/usr/bin/python3" not in ln]
    assert proc.returncode == 0 or not problems, proc.stderr


def test_service_is_a_hardened_oneshot(SERVICE: Path) -> None:
    d = directives(SERVICE)
    one = {k: v[-1] for k, v in d.items()}
    assert one["Service.Type"] == "oneshot"
    # root by systemd's default: an explicit User=root fails in containers ("Failed to keep CAP_SYS_ADMIN").
    assert "Service.User" not in one and "Service.DynamicUser" not in one
    assert one["Service.EnvironmentFile"] == "/etc/ovr/edge.env"
    assert one["Service.ExecStart"] == "/usr/bin/python3 -m ovr_gxdiscovery"
    assert one["Service.ProtectSystem"] == "strict"
    assert one["Service.CapabilityBoundingSet"] == "CAP_CHOWN"
    assert one["Service.NoNewPrivileges"] == "yes"
    for key in ("ProtectHome", "PrivateTmp", "PrivateDevices"):
        assert one[f"Service.{key}"] == "yes", key
    assert set(one["Service.RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    # It writes exactly its state directory (the default OVR_GX_STATE_DIR) and telegraf.d.
    assert one["Service.StateDirectory"] == "ovr/gx-discovery"
    assert "/var/lib/" + one["Service.StateDirectory"] == ENV["state_dir"][1]
    assert d["Service.ReadWritePaths"] == [ENV["telegraf_config_dir"][1]]
    assert "~@privileged" not in " ".join(d.get("Service.SystemCallFilter", []))  # would forbid chown


def test_timer_keeps_inside_the_gx_keepalive(TIMER: Path) -> None:
    one = {k: v[-1] for k, v in directives(TIMER).items()}
    assert one["Timer.OnBootSec"] == "10s"
    period = int(one["Timer.OnUnitActiveSec"].removesuffix("s"))
    run_limit = float(ENV["run_timeout"][1])
    assert period + run_limit < 60 / 1.5, "keepalives must come well inside Venus OS's 60 s"
    assert one["Timer.AccuracySec"] == "1s"
    assert one["Install.WantedBy"] == "timers.target"
