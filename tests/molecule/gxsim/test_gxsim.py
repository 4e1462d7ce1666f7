"""testinfra checks of roles/gxsim on the `gxsim-1` test host (Debian 13 container).

Everything MQTT runs *inside* the container with Debian's mosquitto-clients, so the checks
see what an edge node on the boat LAN would see. The portal id and ports are read from the
files the role rendered; the login used for the GX-facing listener is the first user of the
password file. Its password comes from GXSIM_TEST_PASSWORD, else the inventory (ansible
backend), else $MOLECULE_EPHEMERAL_DIRECTORY/gx-mqtt-<user> (the scenario's password lookup),
else DEFAULT_TEST_PASSWORD.
"""

from __future__ import annotations

import json
import os
import re
import shlex

import pytest

DEFAULT_TEST_PASSWORD = "gxsim-test-password"
PASSWD_FILE = "/etc/mosquitto/ovr-gxsim.passwd"
ENV_FILE = "/etc/ovr/gxsim.env"
UNIT = "ovr-gxsim.service"


@pytest.fixture(scope="module")
def gx(host) -> dict:
    """What the role configured: portal id, ports, the first MQTT user and its password."""
    env = dict(
        line.split("=", 1)
        for line in host.file(ENV_FILE).content_string.splitlines()
        if "=" in line and not line.startswith("#")
    )
    conf = host.file("/etc/mosquitto/mosquitto.conf").content_string
    listeners = re.findall(r"^listener (\d+) (\S+)$", conf, flags=re.M)
    public = next(int(port) for port, addr in listeners if addr != "127.0.0.1")
    users = []
    if host.file(PASSWD_FILE).exists:
        users = [line.split(":", 1)[0] for line in
                 host.run("cat %s", PASSWD_FILE).stdout.splitlines() if ":" in line]
    password = mqtt_password(host, users[0] if users else None)
    return {
        "portal": env["GXSIM_PORTAL_ID"],
        "local_port": int(env["GXSIM_BROKER_PORT"]),
        "port": public,
        "user": users[0] if users else None,
        "password": password,
    }


def mqtt_password(host, user: str | None) -> str:
    """The MQTT password of `user`, from the first place that has it."""
    if "GXSIM_TEST_PASSWORD" in os.environ:
        return os.environ["GXSIM_TEST_PASSWORD"]
    try:  # the ansible backend knows the inventory
        for u in host.ansible.get_variables().get("gxsim_mqtt_users") or []:
            if u["name"] == user:
                return u["password"]
    except Exception:  # other backends (podman://) have no inventory
        pass
    # The molecule scenario generates it with the password lookup into its ephemeral dir.
    ephemeral = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    if user and ephemeral and os.path.isfile(f"{ephemeral}/gx-mqtt-{user}"):
        with open(f"{ephemeral}/gx-mqtt-{user}", encoding="utf-8") as f:
            return f.readline().split(" salt=")[0].strip()
    return DEFAULT_TEST_PASSWORD


def auth(gx: dict) -> str:
    if gx["user"] is None:
        return ""
    return f"-u {shlex.quote(gx['user'])} -P {shlex.quote(gx['password'])}"


def mqtt_script(host, script: str):
    """Run a small shell script (subscriber in the background, then publishes) in the host."""
    return host.run("sh -c %s", script)


def lines_by_topic(output: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in output.splitlines():
        topic, _, payload = line.partition(" ")
        found.setdefault(topic, []).append(payload)
    return found


# --- packages, units, files -------------------------------------------------------------


@pytest.mark.parametrize("name", ["mosquitto", "mosquitto-clients", "python3-paho-mqtt"])
def test_debian_packages_installed(host, name: str) -> None:
    assert host.package(name).is_installed


@pytest.mark.parametrize("unit", ["mosquitto.service", UNIT])
def test_units_enabled_and_active(host, unit: str) -> None:
    service = host.service(unit)
    assert service.is_enabled
    assert service.is_running, host.run("journalctl -u %s -n 30 --no-pager", unit).stdout


def test_simulator_runs_as_its_own_system_user(host) -> None:
    user = host.user("ovr-gxsim")
    assert user.exists and user.uid < 1000 and user.shell == "/usr/sbin/nologin"
    pid = host.service(UNIT).systemd_properties["MainPID"]
    assert pid != "0"
    assert host.run("ps -o user= -p %s", pid).stdout.strip() == "ovr-gxsim"
    assert host.process.get(pid=int(pid)).args.startswith("/usr/bin/python3 -m ovr_gxsim")


def test_unit_hardening(host) -> None:
    props = host.service(UNIT).systemd_properties
    expected = {
        "User": "ovr-gxsim",
        "Group": "ovr-gxsim",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "Restart": "on-failure",
        "ProtectKernelTunables": "yes",
        "ProtectControlGroups": "yes",
        "MemoryDenyWriteExecute": "yes",
        "RestrictSUIDSGID": "yes",
        "UMask": "0077",
    }
    assert {k: props.get(k) for k in expected} == expected
    assert set(props["RestrictAddressFamilies"].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert "mosquitto.service" in props["After"].split()
    assert "mosquitto.service" in props["Wants"].split()
    assert props["EnvironmentFiles"].startswith(ENV_FILE)
    # CapabilityBoundingSet= (empty): systemctl shows it empty, testinfra drops empty
    # properties, so check the unit and what the running process really has.
    shown = host.run("systemctl show -p CapabilityBoundingSet -p AmbientCapabilities %s", UNIT)
    assert sorted(shown.stdout.split()) == ["AmbientCapabilities=", "CapabilityBoundingSet="]
    status = host.file(f"/proc/{props['MainPID']}/status").content_string
    caps = dict(re.findall(r"^(Cap\w+):\s+([0-9a-f]+)$", status, flags=re.M))
    assert caps["CapBnd"] == caps["CapEff"] == caps["CapPrm"] == "0" * 16
    assert re.search(r"^NoNewPrivs:\s+1$", status, flags=re.M)


def test_installed_files_modes(host) -> None:
    env = host.file(ENV_FILE)
    assert (env.user, env.group, env.mode) == ("root", "ovr-gxsim", 0o640)
    code = host.file("/opt/ovr/gxsim/ovr_gxsim/__main__.py")
    assert (code.user, code.group, code.mode) == ("root", "root", 0o644)
    assert host.file("/opt/ovr/gxsim/profiles/default.json").mode == 0o644
    assert not host.file("/opt/ovr/gxsim/ovr_gxsim/__pycache__").exists
    unit = host.file(f"/etc/systemd/system/{UNIT}")
    assert (unit.user, unit.mode) == ("root", 0o644)
    conf = host.file("/etc/mosquitto/mosquitto.conf")
    assert conf.contains("^persistence false$")
    if host.file(PASSWD_FILE).exists:
        pw = host.file(PASSWD_FILE)
        assert (pw.user, pw.group, pw.mode) == ("mosquitto", "mosquitto", 0o600)
        assert re.match(r"^[^:]+:\$7\$101\$", pw.content_string)


def test_listeners(host, gx: dict) -> None:
    assert host.socket(f"tcp://0.0.0.0:{gx['port']}").is_listening
    assert host.socket(f"tcp://127.0.0.1:{gx['local_port']}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{gx['local_port']}").is_listening


def test_simulator_log_is_clean(host) -> None:
    log = host.run("journalctl -u %s --no-pager -o cat", UNIT).stdout
    assert "retained Serial published" in log
    assert "Traceback" not in log and "ERROR" not in log


# --- MQTT behaviour, as an edge node sees it ----------------------------------------------


def test_retained_serial_without_keepalive(host, gx: dict) -> None:
    out = host.run(
        f"mosquitto_sub -h 127.0.0.1 -p {gx['port']} {auth(gx)} -t 'N/+/system/0/Serial'"
        " -C 1 -W 5 -F '%r %t %p'"
    )
    assert out.rc == 0, out.stderr
    retained, topic, payload = out.stdout.strip().split(" ", 2)
    assert retained == "1"
    assert topic == f"N/{gx['portal']}/system/0/Serial"
    assert json.loads(payload) == {"value": gx["portal"]}


def test_keepalive_brings_a_full_republish(host, gx: dict) -> None:
    p, a, portal = gx["port"], auth(gx), gx["portal"]
    out = mqtt_script(host, f"""
        mosquitto_sub -h 127.0.0.1 -p {p} {a} -t 'N/{portal}/#' -W 4 -F '%t %p' > /tmp/ka.txt &
        sleep 0.5
        mosquitto_pub -h 127.0.0.1 -p {p} {a} -t 'R/{portal}/keepalive' -n
        wait
        cat /tmp/ka.txt
    """)
    topics = lines_by_topic(out.stdout)
    assert f"N/{portal}/full_publish_completed" in topics, out.stdout[-2000:]
    assert f"N/{portal}/heartbeat" in topics
    assert len(topics) > 100
    for path in ("system/0/Dc/Battery/Soc", "vebus/276/Mode", "gps/0/Position/Latitude",
                 "settings/0/Settings/SystemSetup/SystemName"):
        payload = json.loads(topics[f"N/{portal}/{path}"][0])
        assert "value" in payload


def test_write_mode_is_echoed(host, gx: dict) -> None:
    p, a, portal = gx["port"], auth(gx), gx["portal"]
    suppress = '{"keepalive-options":["suppress-republish"]}'
    out = mqtt_script(host, f"""
        mosquitto_sub -h 127.0.0.1 -p {p} {a} -t 'N/{portal}/vebus/276/Mode' -C 2 -W 6 -F '%p' \
            > /tmp/mode.txt &
        sleep 0.5
        mosquitto_pub -h 127.0.0.1 -p {p} {a} -t 'R/{portal}/keepalive' -m '{suppress}'
        mosquitto_pub -h 127.0.0.1 -p {p} {a} -t 'W/{portal}/vebus/276/Mode' -m '{{"value": 9}}'
        mosquitto_pub -h 127.0.0.1 -p {p} {a} -t 'W/{portal}/vebus/276/Mode' -m '{{"value": 2}}'
        sleep 0.3
        mosquitto_pub -h 127.0.0.1 -p {p} {a} -t 'W/{portal}/vebus/276/Mode' -m '{{"value": 3}}'
        wait
        cat /tmp/mode.txt
    """)
    assert out.stdout.split() == ['{"value":2}', '{"value":3}'], out.stdout + out.stderr


def test_anonymous_clients_refused_when_users_are_set(host, gx: dict) -> None:
    anonymous = host.run(
        "mosquitto_sub -h 127.0.0.1 -p %s -t 'N/+/system/0/Serial' -C 1 -W 3", str(gx["port"])
    )
    if gx["user"] is None:  # "Unsecured" GX: anonymous access is the point
        assert anonymous.rc == 0, anonymous.stderr
        return
    assert anonymous.rc != 0
    assert "not authori" in (anonymous.stdout + anonymous.stderr).lower()
    wrong = host.run(
        "mosquitto_sub -h 127.0.0.1 -p %s -u %s -P wrong-password -t '#' -C 1 -W 3",
        str(gx["port"]), gx["user"],
    )
    assert wrong.rc != 0


def test_code_is_one_release_exactly_as_the_source(host) -> None:
    """common's python_service ships one artifact: the installed tree is the source tree (no
    byte code, no leftovers of deleted modules), and the install path points at that release."""
    from pathlib import Path

    src = Path(__file__).resolve().parents[3] / "files/services"
    want = {str(p.relative_to(src / "gxsim")) for p in (src / "gxsim").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    want |= {str(p.relative_to(src / "common")) for p in (src / "common").rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc" and "ovr_common" in p.parts}
    link = host.file("/opt/ovr/gxsim")
    assert link.is_symlink and re.fullmatch(r"/opt/ovr/\.releases/gxsim-[0-9a-f]{16}", link.linked_to), link.linked_to
    have = set(host.check_output("cd /opt/ovr/gxsim/ && find . -type f -printf '%P\\n'").split())
    assert have == want | {".ovr-release"}
