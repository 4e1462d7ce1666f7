"""The inventory check that runs first in every playbook (plugins/action/ovr_inventory_check.py)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("ovr_inventory_check", ROOT / "plugins/action/ovr_inventory_check.py")
assert _spec and _spec.loader
mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mod)

SPECS = mod.load_specs(ROOT / "roles")


def test_specs_of_every_role_are_loaded():
    assert {"common", "edge", "cloud", "gxsim"} <= set(SPECS)
    assert "common_firewall_allowed_tcp_ports" in SPECS["common"]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("common_firewall_allowed_tcp_ports", "8080", "must be a list, got str '8080' (write it as a YAML list"),
        ("common_firewall_allowed_tcp_ports", 8080, "must be a list, got int"),
        ("common_firewall_allowed_tcp_ports", ["http"], "common_firewall_allowed_tcp_ports[0]: must be a int, got str"),
        ("common_ssh_port", "22", "must be a int, got str"),
        ("common_ssh_port", True, "must be a number (int), got a boolean"),
        ("common_firewall_enabled", "yes", "use true or false without quotes"),
        ("common_ssh_permit_root_login", "yes", "'yes' is not one of no, prohibit-password"),
        ("common_journald_max_retention", 30, "must be a str, got int 30 (quote it)"),
    ],
)
def test_wrong_types_are_named(name, value, expected):
    problems = mod.check({name: value}, SPECS, [])
    assert len(problems) == 1
    assert problems[0].startswith(name)
    assert expected in problems[0]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("edge_cloud_password", 4711081542230815, "edge_cloud_password: must be a str, got int (quote it)"),
        ("cloud_operators", [{"name": "ops", "password": 4711081542230815}],
         "cloud_operators[0].password: must be a str, got int (quote it)"),
        ("edge_gx_systems", {"password": "4711081542230815", "name": "main", "host": "192.0.2.1"},
         "edge_gx_systems: must be a list, got dict"),
        ("gxsim_mqtt_users", ["ovr:4711081542230815"], "gxsim_mqtt_users[0]: must be a dict, got str"),
        ("edge_events_users", [{"name": "skipper", "password": ["4711081542230815"]}],
         "edge_events_users[0].password: must be a str, got list"),
    ],
    ids=["password", "operator-password", "gx-list", "gxsim-user", "events-user-password"],
)
def test_wrong_types_of_secrets_do_not_print_them(name, value, expected):
    """A value that is (or holds) a no_log option is named by its type only, never shown."""
    problems = mod.check({name: value}, SPECS, [])
    assert len(problems) == 1
    assert "4711081542230815" not in problems[0]
    assert expected in problems[0]


def test_valid_values_pass():
    assert mod.check(
        {
            "common_firewall_allowed_tcp_ports": [80, 443],
            "common_ssh_port": 2222,
            "common_firewall_enabled": False,
            "common_ssh_permit_root_login": "no",
            "unrelated_variable": "anything",
            "common_journald_system_max_use": "{{ some_template }}",
        },
        SPECS,
        [],
    ) == []


def test_unknown_variable_close_to_a_real_one_gets_a_suggestion():
    problems = mod.check({"common_firewall_allowed_tcp_port": [80]}, SPECS, [])
    assert problems == [
        "common_firewall_allowed_tcp_port: unknown variable for role 'common' "
        "(did you mean common_firewall_allowed_tcp_ports?) — set in inventory or extra vars"
    ]


def test_unknown_keys_of_nested_options():
    spec = {"type": "list", "elements": "dict", "options": {"host": {"type": "str", "required": True}, "port": {"type": "int"}}}
    problems = mod.validate("x_systems", [{"host": "a", "prot": 1}, {"port": "1883"}], spec)
    assert "x_systems[0].prot: unknown key (did you mean port?)" in problems
    assert "x_systems[1].port: must be a int, got str '1883' (quote it)" not in problems
    assert any(p.startswith("x_systems[1].port: must be a int") for p in problems)
    assert "x_systems[1].host: required key is missing" in problems


def test_source_file_is_found(tmp_path):
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text("---\ncommon_ssh_port: 22\n")
    (tmp_path / "host_vars" / "boat-7.yml").write_text("---\ncommon_firewal_enabled: true\n")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        problems = mod.check({"common_firewal_enabled": True}, SPECS, [tmp_path])
    finally:
        os.chdir(cwd)
    assert problems == [
        "common_firewal_enabled: unknown variable for role 'common' (did you mean common_firewall_enabled?)"
        " — set in host_vars/boat-7.yml"
    ]


def _run_playbook(inventory: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), NO_COLOR="1", ANSIBLE_FORCE_COLOR="0")
    ansible_playbook = Path(sys.executable).parent / "ansible-playbook"
    return subprocess.run(
        [str(ansible_playbook), "-i", str(inventory), str(ROOT / "playbooks/common.yml")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _inventory(tmp_path: Path, host_vars: str) -> Path:
    inv = tmp_path / "inv"
    (inv / "host_vars").mkdir(parents=True)
    (inv / "hosts.yml").write_text(
        textwrap.dedent(
            """\
            all:
              hosts:
                boat-7:
                  ansible_connection: local
                  ansible_python_interpreter: "{{ ansible_playbook_python }}"
            """
        )
    )
    (inv / "host_vars" / "boat-7.yml").write_text(host_vars)
    return inv


def test_playbook_stops_before_changing_anything_and_names_variable_and_file(tmp_path):
    inv = _inventory(
        tmp_path,
        "---\ncommon_firewall_allowed_tcp_ports: 8080\ncommon_ssh_prot: 2222\n",
    )
    result = _run_playbook(inv)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "Inventory problems for host boat-7" in out
    assert "common_firewall_allowed_tcp_ports: must be a list, got int 8080" in out
    assert "common_ssh_prot: unknown variable for role 'common' (did you mean common_ssh_port?)" in out
    assert "host_vars/boat-7.yml" in out
    # It failed in the first task: no role task ran.
    assert "TASK [common :" not in out
