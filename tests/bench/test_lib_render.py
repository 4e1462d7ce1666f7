"""bench/lib.py renders the roles' templates in-process (jinja2 with Ansible's filters): the files
must be byte for byte what Ansible's template module writes from the same variables, or the
benchmarks would measure another configuration than the one deployed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import lib  # noqa: E402

EDGE = {
    "edge_vm_listen_address": "127.0.0.1:18428", "edge_vmagent_listen_address": "127.0.0.1:18429",
    "edge_vm_data_path": "/tmp/vm", "edge_vmagent_data_path": "/tmp/vmagent", "edge_deployment_id": "bench",
    "edge_node_id": "bench-edge", "edge_cloud_host": "127.0.0.1", "edge_cloud_username": "bench-edge",
    "edge_cloud_remote_write_url": "https://127.0.0.1:8443/api/v1/write", "_edge_cloud_password_file": "/tmp/pw",
    "__edge_cloud": {"remote_write": "pw", "mqtt": "", "ca_pem": "PEM"},
    "edge_victron_processor_script_path": str(lib.STAR), "_edge_etc": "/tmp/etc",
}
CLOUD = {
    "cloud_nodes": ["bench-edge", "n00001"], "cloud_domain": "127.0.0.1", "cloud_tls_mode": "internal",
    "__cloud_secrets": {"bench-edge": {"remote_write": "a" * 32}, "n00001": {"remote_write": "b" * 32}},
    "cloud_operators": [], "cloud_vm_data_path": "/tmp/cloud-vm", "_cloud_vm_listen_address": "127.0.0.1:18430",
    "_cloud_caddy_tls_dir": "/tmp/tls", "__cloud_vm_version": "1.79.5",
}
CASES = {
    "edge": (EDGE, ["telegraf.conf", "victron_processor.conf", "vmagent.service", "victoria-metrics-override.conf",
                    "vmagent-relabel.yml", "vmagent-cloud-aggregation.yml", "vmagent-cloud-relabel.yml"]),
    "cloud": (CLOUD, ["Caddyfile", "victoria-metrics-override.conf"]),
}


@pytest.mark.parametrize("role", sorted(CASES))
def test_render_role_matches_ansible(role: str, tmp_path: Path) -> None:
    overrides, names = CASES[role]
    rdir = REPO / "roles" / role
    play = [{"hosts": "localhost", "connection": "local", "gather_facts": False,
             "vars_files": [str(rdir / "defaults/main.yml"), str(rdir / "vars/main.yml")],
             "tasks": [{"name": n, "ansible.builtin.template": {"src": str(rdir / "templates" / f"{n}.j2"),
                                                                "dest": str(tmp_path / n), "mode": "0600"}}
                       for n in names]}]
    (tmp_path / "play.yml").write_text(json.dumps(play))
    (tmp_path / "vars.json").write_text(json.dumps(overrides | {"ansible_python_interpreter": sys.executable}))
    proc = subprocess.run([lib.tool("ansible-playbook"), "-i", "localhost,", str(tmp_path / "play.yml"),
                           "-e", f"@{tmp_path / 'vars.json'}"], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "ANSIBLE_FILTER_PLUGINS":
                               f"{REPO / 'plugins/filter'}:{rdir / 'filter_plugins'}"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    ours = lib.render_role(role, names, overrides)
    for n in names:
        assert ours[n] == (tmp_path / n).read_text(), n
