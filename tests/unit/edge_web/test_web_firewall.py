"""The dashboard's ports are open to the boat LAN only: the rule file common's firewall_rule renders
for the edge's web task accepts only from the LAN's networks, and nft accepts the ruleset.
(molecule/edge has no WAN to probe from; tests/molecule/edge/test_web.py checks the rule on a host.)"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "roles" / "common" / "templates" / "firewall_rule.nft.j2"


def render(**vars_) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["comment"] = lambda s: "# " + s
    env.tests["search"] = lambda value, pattern: re.search(pattern, value) is not None
    env.globals["lookup"] = lambda kind, name, default=None: vars_.get(name, default)
    return env.from_string(TEMPLATE.read_text()).render(ansible_managed="managed", **vars_)


def web_rule_vars(cidrs: list[str]) -> dict:
    """The vars roles/edge/tasks/web.yml hands to firewall_rule, with the LAN given."""
    tasks = yaml.safe_load((ROOT / "roles" / "edge" / "tasks" / "web.yml").read_text())
    include = next(t for t in tasks if t.get("name") == "Open the dashboard to the boat LAN")
    v = dict(include["vars"])
    assert v["common_firewall_rule_sources"] == "{{ __edge_web_cidrs }}"
    v["common_firewall_rule_sources"] = cidrs
    v["common_firewall_rule_tcp_ports"] = [80, 443]
    return v


def accepts(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("add rule")]


def test_every_accept_names_the_lan():
    text = render(**web_rule_vars(["192.168.20.0/24", "fd00:20::/64"]))
    lines = accepts(text)
    assert len(lines) == 2, text
    assert "ip saddr { 192.168.20.0/24 } tcp dport { 80, 443 } accept" in lines[0]
    assert "ip6 saddr { fd00:20::/64 } tcp dport { 80, 443 } accept" in lines[1]


def test_without_sources_the_rule_would_be_open_to_all():
    """Why web.yml refuses an empty LAN: the same template with no sources accepts from anywhere."""
    lines = accepts(render(**web_rule_vars([])))
    assert lines and all("saddr" not in line for line in lines)
    tasks = yaml.safe_load((ROOT / "roles" / "edge" / "tasks" / "web.yml").read_text())
    guard = next(t for t in tasks if t.get("name") == "Check the dashboard knows the boat LAN")
    assert guard["ansible.builtin.assert"]["that"] == "__edge_web_cidrs | length > 0"


@pytest.mark.skipif(not shutil.which("nft"), reason="needs nft (nftables)")
def test_nft_accepts_the_rule_in_the_ruleset(tmp_path):
    rules = tmp_path / "r.nft"
    rules.write_text("table inet ovr {\n chain input {\n type filter hook input priority filter; policy drop;\n }\n}\n"
                     + render(**web_rule_vars(["10.89.0.0/24"])))
    run = subprocess.run(["nft", "-c", "-f", str(rules)], capture_output=True, text=True)
    if run.returncode != 0 and "Operation not permitted" in run.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN here")
    assert run.returncode == 0, run.stderr
