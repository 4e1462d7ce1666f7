"""The roles' preflight checks, run for real by ansible-playbook on the controller alone.

A wrong inventory value must stop the play before anything changes on a host, with a message
that names the value and says where to fix it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

OPERATOR = {"name": "ops", "password": "a-long-enough-password"}


def run_preflight(tmp_path: Path, role: str, extra: dict, facts: dict | None = None,
                  verbosity: int = 0, edge_hosts: list[str] | None = None) -> subprocess.CompletedProcess:
    """Run one role's preflight.yml on localhost; ``facts`` stand in for the target's (e.g. systemd),
    ``edge_hosts`` make an inventory whose edge group has them (the cloud's default cloud_nodes)."""
    inventory = "localhost,"
    if edge_hosts is not None:
        inventory = str(tmp_path / "hosts.json")
        (tmp_path / "hosts.json").write_text(json.dumps(
            {"all": {"hosts": {"localhost": {}}, "children": {"edge": {"hosts": {host: {} for host in edge_hosts}}}}}))
    tasks = [{"ansible.builtin.set_fact": {**facts, "cacheable": True}}] if facts else []
    tasks.append({"ansible.builtin.include_role": {"name": role, "tasks_from": "preflight"}})
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    (tmp_path / "play.yml").write_text(json.dumps(play))
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", inventory, "-c", "local", str(tmp_path / "play.yml"),
         "-e", f"@{tmp_path / 'vars.json'}", *(["-" + "v" * verbosity] if verbosity else [])],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_cloud_preflight_passes_a_valid_inventory(tmp_path):
    result = run_preflight(tmp_path, "cloud", {"cloud_nodes": ["boat-7", "van_2"], "cloud_operators": [OPERATOR]})
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"cloud_nodes": ["boat-7", "registry"]}, "cloud_nodes has registry: these names are MQTT topics for the whole fleet"),
        ({"cloud_nodes": ["Boat 7"]}, "cloud_nodes has ids that are not lowercase letters"),
        ({"cloud_nodes": ["boat-7"], "cloud_rotate_credentials": ["boat-9"]},
         "cloud_rotate_credentials names nodes this cloud does not serve: boat-9"),
        ({"cloud_nodes": ["boat-7"], "cloud_mqtt_port": 443}, "cloud_mqtt_port=443 must be a free port"),
    ],
    ids=["reserved-id", "bad-id", "rotate-unknown", "mqtt-port"],
)
def test_cloud_preflight_names_the_wrong_value(tmp_path, values, message):
    result = run_preflight(tmp_path, "cloud", {"cloud_operators": [OPERATOR], **values})
    assert result.returncode == 2, result.stdout[-3000:]
    assert message in " ".join(result.stdout.split()), result.stdout[-3000:]
    assert "Traceback" not in result.stdout + result.stderr


def test_edge_preflight_refuses_a_fleet_wide_topic_as_node_id(tmp_path):
    result = run_preflight(tmp_path, "edge", {"edge_node_id": "events", "edge_deployment_id": "rental"})
    assert result.returncode == 2, result.stdout[-3000:]
    assert "node_id 'events' is an MQTT topic for the whole fleet" in " ".join(result.stdout.split()), result.stdout[-3000:]


# Secrets that must never reach the output: one on an entry that passes (with -v Ansible prints
# every loop item's result), one on the entry that fails.
GOOD_SECRET = "Good-Secret-q7Xw2Lm9Rt"
BAD_SECRET = "Bad-Secret-k3Vz8Np4Hs"
SHORT_SECRET = "Short-m5Jc"
EDGE = {"edge_node_id": "boat-7", "edge_deployment_id": "rental",
        "edge_events_users": [{"name": "skipper", "password": GOOD_SECRET + "-events"}]}
GOOD_GX = {"name": "main", "host": "192.0.2.10", "username": "ovr", "password": GOOD_SECRET}
SYSTEMD_DEBIAN = {"service_mgr": "systemd", "os_family": "Debian"}


@pytest.mark.parametrize(
    ("role", "values", "message"),
    [
        ("edge", {"edge_gx_systems": [GOOD_GX, {"name": "Aft GX", "host": "192.0.2.11", "username": "ovr",
                                                "password": BAD_SECRET}]},
         "edge_gx_systems[1] ('Aft GX') in host_vars/localhost.yml is invalid"),
        ("edge", {"edge_gx_systems": [GOOD_GX, {"name": "aft", "username": "ovr", "password": BAD_SECRET}]},
         "edge_gx_systems[1] ('aft') in host_vars/localhost.yml is invalid"),
        ("edge", {"edge_gx_systems": [GOOD_GX, {"host": "192.0.2.11", "username": "ovr", "password": BAD_SECRET}]},
         "edge_gx_systems[1] ('?') in host_vars/localhost.yml is invalid"),
        ("gxsim", {"gxsim_mqtt_users": [{"name": "ovr", "password": GOOD_SECRET},
                                        {"name": "", "password": BAD_SECRET}]},
         "gxsim_mqtt_users[1] ('') in the inventory of this GX host"),
        ("cloud", {"cloud_nodes": ["boat-7"], "cloud_operators": [{"name": "ops", "password": GOOD_SECRET},
                                                                  {"name": "Ops 2", "password": BAD_SECRET}]},
         "cloud_operators[1] ('Ops 2') in group_vars/cloud.yml needs a name"),
        ("cloud", {"cloud_nodes": ["boat-7"], "cloud_operators": [{"name": "ops", "password": GOOD_SECRET},
                                                                  {"name": "ops2", "password": SHORT_SECRET}]},
         "cloud_operators[1] ('ops2') in group_vars/cloud.yml needs a name"),
        # One ACL line per topic entry: a newline would smuggle in another line (or another user).
        ("edge", {"edge_mqtt_users": [{"name": "tool", "password": GOOD_SECRET + "-mqtt",
                                       "topics": ["read ovr/#\nuser ovr-events"]}]},
         "edge_mqtt_users[0] ('tool') in host_vars/localhost.yml"),
        ("edge", {"edge_mqtt_users": [{"name": "ovr-events", "password": BAD_SECRET + "-mqtt", "topics": ["read ovr/#"]}]},
         "edge_mqtt_users[0] ('ovr-events') in host_vars/localhost.yml"),
        ("edge", {"edge_mqtt_users": [{"name": "tool", "password": SHORT_SECRET, "topics": ["read ovr/#"]}]},
         "edge_mqtt_users[0] ('tool') in host_vars/localhost.yml"),
        ("cloud", {"cloud_nodes": ["boat-7"], "cloud_mqtt_service_users": [{"name": "tool", "password": SHORT_SECRET}]},
         "cloud_mqtt_service_users[0] ('tool') in group_vars/cloud.yml needs a name"),
    ],
    ids=["edge-gx-bad-name", "edge-gx-no-host", "edge-gx-no-name", "gxsim-user-no-name",
         "cloud-operator-bad-name", "cloud-operator-short-password", "edge-mqtt-user-two-acl-lines",
         "edge-mqtt-user-is-events-worker", "edge-mqtt-user-short-password", "cloud-service-user-short-password"],
)
def test_failing_entry_check_prints_no_password(tmp_path, role, values, message):
    """A looped check that fails names the entry, the variable and the file, and prints no password
    of any entry, even with -v."""
    extra = {**(EDGE if role == "edge" else {}), **values}
    facts = SYSTEMD_DEBIAN if role == "gxsim" else None
    result = run_preflight(tmp_path, role, extra, facts=facts, verbosity=1)
    output = result.stdout + result.stderr
    for secret in (GOOD_SECRET, BAD_SECRET, SHORT_SECRET):
        assert secret not in output, output[-3000:]
    assert result.returncode == 2, result.stdout[-3000:]
    assert message in " ".join(result.stdout.split()), result.stdout[-3000:]
    assert "Traceback" not in output


def test_cloud_preflight_passes_nodes_from_the_edge_group(tmp_path):
    result = run_preflight(tmp_path, "cloud", {"cloud_operators": [OPERATOR, {**OPERATOR, "name": "boat-ops"}]},
                           edge_hosts=["boat-7", "van_2"])
    assert result.returncode == 0, result.stdout[-3000:]


# Node ids, operators and the cloud's own MQTT user (ovr-fleet) are users of one Mosquitto password
# file and ACL: one name in two places would merge their rights.
@pytest.mark.parametrize(
    ("values", "edge_hosts", "message"),
    [
        ({"cloud_operators": [OPERATOR, {**OPERATOR, "name": "boat-7"}]}, ["boat-7", "van_2"],
         "cloud_operators[1] ('boat-7') in group_vars/cloud.yml has the name of the edge host boat-7"
         " (inventory/<fleet>/hosts.yml)"),
        ({"cloud_nodes": ["boat-7"], "cloud_operators": [{**OPERATOR, "name": "boat-7"}]}, None,
         "cloud_operators[0] ('boat-7') in group_vars/cloud.yml has the name of the node boat-7 in cloud_nodes"
         " (group_vars/cloud.yml)"),
        ({"cloud_operators": [OPERATOR, {**OPERATOR, "name": "ovr-fleet"}]}, ["boat-7"],
         "cloud_operators[1] ('ovr-fleet') in group_vars/cloud.yml has the name of the cloud's own MQTT user ovr-fleet"),
        ({"cloud_operators": [OPERATOR]}, ["boat-7", "ovr-fleet"],
         "cloud_nodes has ovr-fleet: the cloud's broker has its own MQTT user of that name"),
        ({"cloud_operators": [OPERATOR, {**OPERATOR, "name": "viewer"}, OPERATOR]}, ["boat-7"],
         "cloud_operators in group_vars/cloud.yml lists the same name twice: 'ops' (cloud_operators[0] and [2])"),
        ({"cloud_nodes": ["boat-7", "van_2", "boat-7"], "cloud_operators": [OPERATOR]}, None,
         "cloud_nodes has ids that are not lowercase letters, digits, '-' or '_' (at most 63, starting with a letter"
         " or digit) or appear twice: boat-7."),
        ({"cloud_operators": [OPERATOR], "cloud_mqtt_service_users": [{"name": "ovr-fleet", "password": OPERATOR["password"]}]},
         ["boat-7"], "ovr-fleet appears twice among the cloud's own broker users"),
        ({"cloud_operators": [OPERATOR], "cloud_mqtt_service_users": [{"name": "boat-7", "password": OPERATOR["password"]}]},
         ["boat-7"], "cloud_nodes has boat-7: the cloud's broker has its own MQTT user of that name"),
        ({"cloud_operators": [OPERATOR], "cloud_mqtt_service_users": [{"name": "ops", "password": OPERATOR["password"]}]},
         ["boat-7"], "cloud_operators[0] ('ops') in group_vars/cloud.yml has the name of the cloud's own MQTT user ops"),
    ],
    ids=["operator-is-edge-host", "operator-is-listed-node", "operator-is-fleet-user", "node-is-fleet-user",
         "operator-twice", "node-twice", "service-user-is-fleet-user", "node-is-service-user", "operator-is-service-user"],
)
def test_cloud_preflight_refuses_a_name_used_twice_on_the_broker(tmp_path, values, edge_hosts, message):
    result = run_preflight(tmp_path, "cloud", values, edge_hosts=edge_hosts)
    assert result.returncode == 2, result.stdout[-3000:]
    assert message in " ".join(result.stdout.split()), result.stdout[-3000:]
    assert OPERATOR["password"] not in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_edge_preflight_takes_local_broker_users_and_refuses_a_name_twice(tmp_path):
    tool = {"name": "tool", "password": GOOD_SECRET + "-mqtt", "topics": ["read ovr/#", "write ovr/boat-7/status"]}
    result = run_preflight(tmp_path, "edge", {**EDGE, "edge_mqtt_users": [tool]})
    assert result.returncode == 0, result.stdout[-3000:]
    result = run_preflight(tmp_path, "edge", {**EDGE, "edge_mqtt_users": [tool, {**tool, "topics": ["read ovr/#"]}]})
    assert result.returncode == 2, result.stdout[-3000:]
    assert "edge_mqtt_users lists the same name twice: 'tool' (edge_mqtt_users[0] and [1])" in " ".join(result.stdout.split())
    assert GOOD_SECRET not in result.stdout + result.stderr
