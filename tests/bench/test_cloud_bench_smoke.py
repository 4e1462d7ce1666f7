"""Smoke test of the cloud benchmark tool (bench/cloud.py), not of speed: a --quick run must finish
within 45 s, exit 0, print the report's sections and write JSON with sane content (to a temporary
file). It needs what the benchmark needs: caddy, victoria-metrics and mosquitto from Debian
(make host), ansible-playbook and cramjam in the venv. The edge cloud leg also needs Telegraf
($TELEGRAF_BIN) and a vmagent with stream aggregation ($VMAGENT_BIN, or the host's when it has it);
without one the tool skips that leg and says so, and so does this test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench/cloud.py"
TIMEOUT_S = 45

HEADINGS = (
    "== Cloud benchmark",
    "-- Max throughput",
    "-- Nodes at",
    "-- Summary vs goals --",
    "ratio caddy / direct",
    "Identity through Caddy",
)


def test_quick_run_prints_the_report(tmp_path: Path) -> None:
    out_json = tmp_path / "cloud.json"
    proc = subprocess.Popen(
        [sys.executable, str(BENCH), "--quick", "--json", str(out_json)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # the benchmark cleans up its own processes on SIGTERM
        stdout, stderr = proc.communicate(timeout=60)
        raise AssertionError(f"bench/cloud.py --quick did not finish in {TIMEOUT_S} s\n{stderr[-4000:]}") from None
    assert proc.returncode == 0, f"rc={proc.returncode}\nstdout:\n{stdout[-3000:]}\nstderr:\n{stderr[-4000:]}"
    missing = [h for h in HEADINGS if h not in stdout]
    assert not missing, f"report lacks {missing}:\n{stdout}"

    doc = json.loads(out_json.read_text())
    meta = doc["meta"]
    assert meta["quick"] is True
    assert meta["loadavg_before"] and meta["loadavg_after"]
    ing = doc["ingest"]
    assert ing["identity"]["ok"], ing["identity"]  # a node's credentials only ever write as that node
    assert {r["path"] for r in ing["max"]} == {"caddy", "direct"}
    assert {s["path"] for s in ing["steps"]} == {"caddy", "direct"}
    for run in ing["max"] + ing["steps"]:
        assert run["sent_ok_samples"] > 0, run
        assert run["stored"] == run["sent_ok_samples"], run  # every sample landed, under its node's node_id
        assert run["nodes_mismatched"] == 0, run
        assert set(run["cpu_pct_of_core"]) == {"caddy", "vm", "generator"}
    assert doc["summary"]["ratio"] > 0
    if "edge_leg" in doc:
        assert doc["edge_leg"]["seconds"] > 0
    else:
        assert any("edge cloud leg skipped" in n for n in doc["notes"])
