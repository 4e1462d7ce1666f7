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


def run_preflight(tmp_path: Path, role: str, extra: dict) -> subprocess.CompletedProcess:
    play = [{"hosts": "localhost", "gather_facts": False,
             "tasks": [{"ansible.builtin.include_role": {"name": role, "tasks_from": "preflight"}}]}]
    (tmp_path / "play.yml").write_text(json.dumps(play))
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", str(tmp_path / "play.yml"),
         "-e", f"@{tmp_path / 'vars.json'}"],
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
