"""One sandbox for every unit (plugins/filter/ovr_sandbox.py): strict unless a unit relaxes a
directive with its reason, no unit template writes sandbox directives of its own, and each of
our own services scores at most 3.0 in `systemd-analyze security` (lower is safer)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from units import ROOT, _filters, render_unit

ovr_sandbox = _filters()["ovr_sandbox"]
TEMPLATES = sorted(p for p in (ROOT / "roles").glob("*/templates/*.j2") if "[Service]" in p.read_text())
DIRECTIVES = re.findall(r"^(\w+)=", ovr_sandbox({}), flags=re.M)

# Our own services, rendered from the role defaults (the units of Debian's daemons are drop-ins).
OWN_UNITS = [
    ("edge", "ovr-events.service", {}),
    ("edge", "ovr-events-worker.service", {}),
    ("edge", "ovr-refresh-gx-mqtt-sources.service", {}),
    ("edge", "telegraf.service", {"_edge_telegraf_bin": "/usr/bin/telegraf"}),
    ("cloud", "ovr-fleet.service", {"_cloud_fleet_listen": "127.0.0.1:8089"}),
    ("cloud", "ovr-fleet-worker.service", {}),
    ("cloud", "ovr-writegate.service", {}),
    ("edge", "vmagent.service", {}),
    ("gxsim", "ovr-gxsim.service", {}),
]

# Debian's daemons run their packaged unit with our drop-in (<unit>.d/ovr.conf): the packaged
# unit as trixie ships it (checked in the test image: mosquitto 2.0.21), and the drop-in template.
DEBIAN_UNITS = {
    "mosquitto.service": """\
[Unit]
Description=Mosquitto MQTT Broker
Documentation=man:mosquitto.conf(5) man:mosquitto(8)
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
ExecStart=/usr/sbin/mosquitto -c /etc/mosquitto/mosquitto.conf
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
ExecStartPre=/bin/mkdir -m 740 -p /var/log/mosquitto
ExecStartPre=/bin/chown mosquitto:mosquitto /var/log/mosquitto
ExecStartPre=/bin/mkdir -m 740 -p /run/mosquitto
ExecStartPre=/bin/chown mosquitto:mosquitto /run/mosquitto

[Install]
WantedBy=multi-user.target
""",
}
DROP_INS = [
    ("edge", "mosquitto.service", "mosquitto-override.conf"),
    ("cloud", "mosquitto.service", "mosquitto-override.conf"),
]


def exposure(unit: str, root: Path | None = None, path: Path | None = None) -> tuple[float, str]:
    """`systemd-analyze security` of a unit file (``path``) or of a unit under ``root`` (its drop-ins applied)."""
    args = ["systemd-analyze", "security", "--offline=yes", "--no-pager"]
    args += [f"--root={root}", unit] if root else [str(path)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    score = re.search(r"Overall exposure level for \S+: ([\d.]+)", out.stdout)
    assert score, out.stdout + out.stderr
    return float(score.group(1)), out.stdout


def test_strict_by_default() -> None:
    text = ovr_sandbox({})
    assert "CapabilityBoundingSet=\n" in text and "AmbientCapabilities=\n" in text
    for line in ("ProtectSystem=strict", "NoNewPrivileges=yes", "MemoryDenyWriteExecute=yes",
                 "SystemCallFilter=@system-service", "SystemCallFilter=~@privileged", "SystemCallFilter=~@resources"):
        assert line in text.splitlines(), line
    assert "# relaxed:" not in text


def test_a_relaxation_is_written_with_its_reason() -> None:
    text = ovr_sandbox({"CapabilityBoundingSet": {"value": "CAP_NET_BIND_SERVICE", "why": "binds 443"}})
    lines = text.splitlines()
    at = lines.index("CapabilityBoundingSet=CAP_NET_BIND_SERVICE")
    assert lines[at - 1] == "# relaxed: binds 443"
    assert "CapabilityBoundingSet=" not in lines  # the strict value is gone, not repeated


@pytest.mark.parametrize("relax, message", [
    ({"CapabilityBoundingSet": {"value": "CAP_SYS_ADMIN"}}, "needs"),
    ({"CapabilityBoundingSet": {"value": "CAP_SYS_ADMIN", "why": "  "}}, "needs"),
    ({"CapabilityBoundingSet": "CAP_SYS_ADMIN"}, "needs"),
    ({"ProtectSytem": {"value": "full", "why": "typo"}}, "not in the sandbox"),
    (["ProtectSystem"], "expected a mapping"),
])
def test_a_relaxation_without_reason_or_a_typo_fails_the_template(relax, message) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        ovr_sandbox(relax)


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_every_unit_takes_its_sandbox_from_the_filter(template: Path) -> None:
    text = template.read_text()
    assert "ovr_sandbox" in text, f"{template}: use {{{{ {{}} | ovr_sandbox }}}}"
    own = [d for d in re.findall(r"^(\w+)=", text, flags=re.M) if d in DIRECTIVES]
    assert own == [], f"{template} sets sandbox directives itself: {own}; relax them through ovr_sandbox"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
@pytest.mark.parametrize("role, unit, extra", OWN_UNITS, ids=[u for _, u, _ in OWN_UNITS])
def test_our_services_score_at_most_3(tmp_path: Path, role: str, unit: str, extra: dict) -> None:
    path = tmp_path / unit
    path.write_text(render_unit(role, unit, **extra))
    score, report = exposure(unit, path=path)
    assert score <= 3.0, f"{unit}: exposure {score} > 3.0\n{report}"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
@pytest.mark.parametrize("role, unit, dropin", DROP_INS, ids=[f"{r}/{u}" for r, u, _ in DROP_INS])
def test_debian_daemons_with_our_drop_in_score_at_most_3(tmp_path: Path, role: str, unit: str, dropin: str) -> None:
    packaged = tmp_path / "usr/lib/systemd/system" / unit
    packaged.parent.mkdir(parents=True)
    packaged.write_text(DEBIAN_UNITS[unit])
    bare, _ = exposure(unit, root=tmp_path)
    ours = tmp_path / "etc/systemd/system" / f"{unit}.d" / "ovr.conf"
    ours.parent.mkdir(parents=True)
    ours.write_text(render_unit(role, dropin))
    score, report = exposure(unit, root=tmp_path)
    assert score <= 3.0 < bare, f"{role}/{unit}: exposure {score} with our drop-in (packaged: {bare})\n{report}"
