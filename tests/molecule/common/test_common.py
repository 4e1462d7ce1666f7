"""Behaviour of roles/common on a converged host (molecule/common)."""

from __future__ import annotations

import pytest
from conftest import container_ip, tcp_connect

HOST = "common-1"


@pytest.fixture(scope="module")
def host(hosts):
    return hosts(HOST)


@pytest.mark.parametrize(
    ("path", "owner", "group", "mode"),
    [
        ("/etc/ovr", "root", "ovr", 0o750),
        ("/opt/ovr", "root", "root", 0o755),
        ("/var/lib/ovr", "ovr", "ovr", 0o750),
        ("/etc/nftables.conf", "root", "root", 0o750),
        ("/etc/ssh/sshd_config.d/10-ovr.conf", "root", "root", 0o644),
    ],
)
def test_layout_owners_and_modes(host, path, owner, group, mode):
    f = host.file(path)
    assert f.exists, path
    assert (f.user, f.group, f.mode) == (owner, group, mode)


def test_service_account_cannot_log_in(host):
    user = host.user("ovr")
    assert user.exists
    assert user.shell == "/usr/sbin/nologin"
    assert user.uid < 1000, "must be a system account"


@pytest.mark.parametrize("unit", ["ssh.service", "nftables.service", "apt-daily.timer", "apt-daily-upgrade.timer"])
def test_units_enabled_and_active(host, unit):
    svc = host.service(unit)
    assert svc.is_enabled, unit
    assert svc.is_running, unit


def test_timesyncd_enabled_and_skipped_only_because_of_the_container(host):
    svc = host.service("systemd-timesyncd")
    assert svc.is_enabled
    props = svc.systemd_properties
    # systemd refuses to run timesyncd in a container (ConditionVirtualization=!container):
    # on a real host the role starts it.
    assert props["ActiveState"] == "active" or props["ConditionResult"] == "no"


def test_journald_is_bounded(host):
    conf = host.check_output("systemd-analyze cat-config systemd/journald.conf")
    assert "SystemMaxUse=500M" in conf
    assert "MaxRetentionSec=1month" in conf
    assert "Storage=persistent" in conf


def test_unattended_security_upgrades(host):
    assert host.package("unattended-upgrades").is_installed
    dump = host.check_output("apt-config dump")
    assert 'APT::Periodic::Unattended-Upgrade "1";' in dump
    assert 'Unattended-Upgrade::Automatic-Reboot "false";' in dump


def test_sshd_effective_settings(host):
    effective = dict(
        line.split(" ", 1) for line in host.check_output("sshd -T").splitlines() if " " in line
    )
    assert effective["passwordauthentication"] == "no"
    assert effective["permitrootlogin"] == "without-password"
    assert effective["kbdinteractiveauthentication"] == "no"
    assert effective["x11forwarding"] == "no"
    assert effective["maxauthtries"] == "3"
    assert effective["permitemptypasswords"] == "no"


def test_ruleset_default_deny(host):
    table = host.check_output("nft list table inet ovr")
    assert "policy drop" in table
    assert "tcp dport 22 accept" in table


@pytest.fixture(scope="module")
def listeners(host):
    """Throwaway TCP listeners on an allowed (8081) and a closed (8082) port."""
    for port in (8081, 8082):
        host.run_test(
            f"systemd-run --unit=probe-{port} python3 -m http.server --bind 0.0.0.0 {port}"
        )
    host.run("sleep 1")
    yield
    for port in (8081, 8082):
        host.run(f"systemctl stop probe-{port}")


def test_firewall_really_drops_a_closed_port(host, listeners):
    ip = container_ip(HOST)
    # Listening inside, but dropped at the firewall: the connection times out (no RST).
    assert host.run("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8082/").stdout == "200"
    assert tcp_connect(ip, 8082) == "timeout"


def test_firewall_lets_allowed_ports_through(host, listeners):
    ip = container_ip(HOST)
    assert tcp_connect(ip, 8081) == "open"  # common_firewall_allowed_tcp_ports in molecule.yml
    assert tcp_connect(ip, 22) == "open"  # management access
