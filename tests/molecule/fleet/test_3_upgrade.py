"""A rollout with everything healthy: canary first, then the rest, each through its gate."""

from __future__ import annotations

import json
import re

from fleetlib import EDGE_A, EDGE_B, playbook, sh


def test_rollout_rolls_canary_first_then_the_rest():
    result = playbook("playbooks/upgrade.yml", "-e", json.dumps({"upgrade_batch_size": 1, "edge_vm_retention": "398d"}))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert "ROLLOUT HALTED" not in out
    # One batch per node (batch size 1), the canary (first by name) first; each passed its gate.
    gates = re.findall(r"TASK \[Gate: fresh data of this node in the cloud's VictoriaMetrics\].*?ok: \[([^\] ]+)", out, re.S)
    assert gates == [EDGE_A, EDGE_B], gates
    for node in (EDGE_A, EDGE_B):
        assert "-retentionPeriod=398d" in sh(node, "systemctl show -p ExecStart victoria-metrics").stdout


def test_cloud_rollout_waits_for_the_nodes_to_report_again():
    result = playbook("playbooks/upgrade.yml", "-e", json.dumps({"upgrade_scope": "cloud", "cloud_vm_retention": "29d"}))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert re.search(r"Gate: every node that was reporting before the upgrade reports again.*?ok: \[fleet-cloud\]", out, re.S)
    assert "-retentionPeriod=29d" in sh("fleet-cloud", "systemctl show -p ExecStart victoria-metrics").stdout
