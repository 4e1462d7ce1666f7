"""An edge node reading a GX simulator (molecule/edge): the whole history plane, for real.

Tests run in file order: the pipeline first, then the checks that watch it over minutes,
then the inventory changes (second GX added, lost, dropped), which reload Telegraf.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import wait_for

EDGE = "edge-1"
PORTAL = "c0ffee000001"
VM = "http://127.0.0.1:8428"
SERVICES = ("system", "battery", "solarcharger", "vebus", "gps")


@pytest.fixture(scope="module")
def edge(hosts):
    return hosts(EDGE)


def vm_get(host, path: str, **params: str) -> dict:
    args = " ".join(f"--data-urlencode {shlex.quote(f'{k}={v}')}" for k, v in params.items())
    out = host.check_output(f"curl -sf --get {args} {VM}{path}")
    doc = json.loads(out)
    assert doc["status"] == "success", doc
    return doc["data"]


def series(host, match: str) -> list[dict]:
    return vm_get(host, "/api/v1/series", **{"match[]": match, "start": str(int(time.time()) - 600)})


def names(host) -> set[str]:
    return set(vm_get(host, "/api/v1/label/__name__/values"))


def journal_count(host, unit: str, pattern: str) -> int:
    out = host.run(f"journalctl -u {unit} -o cat --no-pager").stdout
    return sum(1 for line in out.splitlines() if re.search(pattern, line))


# ---- the services --------------------------------------------------------------------------

@pytest.mark.parametrize(
    "unit",
    ["mosquitto.service", "victoria-metrics.service", "vmagent.service", "telegraf.service",
     "ovr-refresh-gx-mqtt-sources.timer"],
)
def test_units_enabled_and_active(edge, unit):
    svc = edge.service(unit)
    assert svc.is_enabled
    assert svc.is_running


@pytest.mark.parametrize(("unit", "user", "rw"), [
    ("mosquitto.service", "mosquitto", ["/var/lib/mosquitto"]),
    ("victoria-metrics.service", "_victoria-metrics", ["/var/lib/victoria-metrics"]),
    ("vmagent.service", "vmagent", ["/var/lib/vmagent"]),
    ("telegraf.service", "telegraf", []),
])
def test_daemons_are_sandboxed(edge, unit, user, rw):
    props = edge.service(unit).systemd_properties
    assert props["User"] == user
    assert props["NoNewPrivileges"] == "yes"
    assert props["ProtectSystem"] == "strict"
    assert props["ProtectHome"] == "yes"
    assert props["PrivateTmp"] == "yes"
    assert props["PrivateDevices"] == "yes"
    assert props.get("CapabilityBoundingSet", "") == ""  # systemctl shows an empty set as nothing
    assert props["RestrictNamespaces"] == "yes"
    # Enforced on the running process, not only declared: no capabilities, no privilege gain,
    # and /usr is read-only in its mount namespace.
    pid = props["MainPID"]
    status = edge.file(f"/proc/{pid}/status").content_string
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M)
    assert re.search(r"^CapBnd:\s+0+$", status, re.M)
    # ProtectSystem=strict: the whole tree is read-only to it except its ReadWritePaths.
    mounts = {f[4]: f[5].split(",") for f in (line.split() for line in
              edge.file(f"/proc/{pid}/mountinfo").content_string.splitlines())}
    assert "ro" in mounts["/"], mounts["/"]
    assert props.get("ReadWritePaths", "").split() == rw
    assert all("rw" in mounts[p] for p in rw), mounts


def test_discovery_runs_as_root_with_only_chown(edge):
    props = edge.service("ovr-refresh-gx-mqtt-sources.service").systemd_properties
    assert props["CapabilityBoundingSet"] == "cap_chown"
    assert props["ProtectSystem"] == "strict"
    assert props["NoNewPrivileges"] == "yes"


def test_everything_listens_on_loopback_only(edge):
    listening = edge.check_output("ss -Hltn")
    for port in (1883, 8428, 8429):
        addrs = {line.split()[3].rsplit(":", 1)[0] for line in listening.splitlines()
                 if line.split()[3].endswith(f":{port}")}
        assert addrs == {"127.0.0.1"}, (port, addrs)


def test_rendered_configuration(edge):
    env = edge.file("/etc/ovr/edge.env")
    assert (env.user, env.group, env.mode) == ("root", "ovr", 0o640)
    assert "OVR_NODE_ID=edge-1" in env.content_string
    assert "OVR_DEPLOYMENT_ID=molecule" in env.content_string
    inventory = json.loads(edge.file("/etc/ovr/gx_inventory.json").content_string)
    assert [s["name"] for s in inventory["systems"]] == ["gx1"]
    assert edge.file("/etc/ovr/gx_systems.json").is_symlink
    conf = edge.file("/etc/ovr/telegraf.d/gx_mqtt_sources.conf")
    assert (conf.user, conf.group, conf.mode) == ("root", "telegraf", 0o640)
    assert 'client_id = "ovr-edge-1-pro6005-1"' in conf.content_string
    secret = edge.file("/etc/ovr/secrets/gx-gx1.password")
    assert (secret.user, secret.group, secret.mode) == ("root", "ovr", 0o640)


# ---- data ----------------------------------------------------------------------------------

def test_victron_series_of_every_service_arrive(edge):
    def have_all():
        got = names(edge)
        return all(any(n.startswith(f"victron_{s}_") for n in got) for s in SERVICES) and got
    got = wait_for(have_all, timeout=60, what="victron_* series of every simulated service")
    for expected in (
        "victron_system_dc_battery_soc_value",
        "victron_battery_soc_value",
        "victron_battery_dc_0_voltage_value",
        "victron_solarcharger_dc_0_voltage_value",
        "victron_vebus_ac_out_p_value",
        "victron_vebus_ac_activein_currentlimit_value",
        "victron_vebus_mode_value",  # never changes: only a full republish carries it
        "victron_vebus_settings_inverteroutputvoltage_value",
        "victron_gps_position_latitude_value",
    ):
        assert expected in got
    assert not any(n.startswith("mqtt_consumer") for n in got), "unprocessed GX metrics leaked"


def test_labels_identity_and_phases(edge):
    found = series(edge, 'victron_vebus_ac_out_p_value')
    assert {s.get("phase") for s in found} == {"L1", "L2", "L3", None}
    for s in found:
        assert s["deployment_id"] == "molecule"
        assert s["node_id"] == "edge-1"
        assert s["system_id"] == "pro6005-1"
        assert s["portal_id"] == PORTAL
        assert s["service"] == "vebus"
        assert s["instance"] == "276"
        assert "topic" not in s and "db" not in s


def test_host_metrics_carry_the_node_identity(edge):
    found = series(edge, 'cpu_usage_idle')
    assert found and all(s["node_id"] == "edge-1" and s["deployment_id"] == "molecule" for s in found)


def test_chaos_payloads_are_dropped_and_counted(edge):
    def reasons():
        data = vm_get(edge, "/api/v1/query", query='max by (reason) (victron_processor_dropped_total{system_id="pro6005-1"})')
        return {r["metric"]["reason"] for r in data["result"] if float(r["value"][1]) > 0}
    expected = {"not_json", "null", "empty", "string", "list", "too_large"}
    wait_for(lambda: expected <= reasons(), timeout=60, what=f"drop counters for {sorted(expected)}")


def test_telegraf_is_not_reloaded_when_nothing_changed(edge):
    props = edge.service("telegraf.service").systemd_properties
    start, pid = props["ExecMainStartTimestamp"], props["MainPID"]
    reloads = journal_count(edge, "telegraf.service", r"Reloading|reloading")
    runs = journal_count(edge, "ovr-refresh-gx-mqtt-sources.service", r"^INFO summary:")
    # Three more runs, started now rather than waited for (the timer fires every 20 s).
    for _ in range(3):
        edge.run_test("systemctl start ovr-refresh-gx-mqtt-sources.service")
    wait_for(lambda: journal_count(edge, "ovr-refresh-gx-mqtt-sources.service", r"^INFO summary:") >= runs + 3,
             timeout=60, interval=2, what="three more discovery runs")
    props = edge.service("telegraf.service").systemd_properties
    assert (props["ExecMainStartTimestamp"], props["MainPID"]) == (start, pid)
    assert journal_count(edge, "telegraf.service", r"Reloading|reloading") == reloads
    assert "keepalive suppress" in edge.check_output("journalctl -u ovr-refresh-gx-mqtt-sources -o cat -n 10")


def test_data_keeps_flowing_past_the_keepalive(edge):
    """More than 3 minutes of GX data with no gap: keepalives keep the GX publishing (60 s expiry)."""
    query = 'sum(count_over_time({__name__=~"victron_(system|vebus|battery)_.+_value", system_id="pro6005-1"}[15s]))'
    # Let at least 200 s of data accumulate (converge and idempotence usually covered it).
    t0 = float(vm_get(edge, "/api/v1/query",
                      query='tfirst_over_time(victron_system_dc_battery_soc_value[1h])')["result"][0]["value"][1])
    wait_for(lambda: time.time() - t0 >= 200, timeout=240, interval=5, what="200 s of data")
    end = int(time.time()) - 5
    data = vm_get(edge, "/api/v1/query_range", query=query, start=str(end - 200), end=str(end), step="15s")
    points = data["result"][0]["values"]
    assert len(points) >= 13
    assert all(float(v) > 0 for _, v in points), f"gap in GX data: {points}"


# ---- inventory changes ---------------------------------------------------------------------

def converge(extra: dict) -> None:
    project = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
    cmd = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(project / "site.yml"),
           "--limit", EDGE, "-e", json.dumps(extra)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


GX1 = {"name": "gx1", "host": "gx", "username": "ovr-edge", "password": "{{ molecule_gx_password }}"}
GX2 = {"name": "gx2", "host": "gx2", "username": "ovr-edge", "password": "{{ molecule_gx_password }}",
       "system_id": "boat-b"}


def conf_text(edge) -> str:
    return edge.file("/etc/ovr/telegraf.d/gx_mqtt_sources.conf").content_string


def systems(edge) -> dict[str, dict]:
    return {s["name"]: s for s in json.loads(edge.file("/etc/ovr/gx_systems.json").content_string)["systems"]}


def discover(edge) -> bool:
    """One discovery run now, instead of waiting up to 20 s for the timer's next one."""
    edge.run("systemctl start ovr-refresh-gx-mqtt-sources.service")
    return True


def test_second_gx_appears_then_drops_out_after_grace(edge, hosts):
    converge({"edge_gx_systems": [GX1, GX2]})
    wait_for(lambda: series(edge, '{__name__=~"victron_.+", system_id="boat-b", portal_id="c0ffee000002"}'),
             timeout=60, what="series of the second GX")
    assert systems(edge)["gx2"]["status"] == "online"

    # The boat's second GX goes dark: reported lost but kept (it may come back) ...
    hosts("gx2").run_test("systemctl stop ovr-gxsim.service mosquitto.service")
    lost = wait_for(lambda: discover(edge) and systems(edge).get("gx2", {}).get("status") == "lost" and systems(edge)["gx2"],
                    timeout=90, interval=3, what="gx2 reported lost")
    assert 'system_id = "boat-b"' in conf_text(edge)
    # ... until the grace period (45 s in this scenario) is over.
    wait_for(lambda: discover(edge) and "gx2" not in systems(edge), timeout=120, interval=3,
             what="gx2 dropped after the grace period")
    assert 'system_id = "boat-b"' not in conf_text(edge)
    assert 'system_id = "pro6005-1"' in conf_text(edge)
    assert datetime.fromisoformat(lost["drops_at"]) - datetime.fromisoformat(lost["last_seen"]) >= timedelta(seconds=45)

    # Removed from the inventory: gone from what discovery reads.
    converge({"edge_gx_systems": [GX1]})
    inventory = json.loads(edge.file("/etc/ovr/gx_inventory.json").content_string)
    assert [s["name"] for s in inventory["systems"]] == ["gx1"]
    hosts("gx2").run_test("systemctl start mosquitto.service ovr-gxsim.service")
