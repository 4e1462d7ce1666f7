"""bench/fleet.py runs (tiny sizes), so the benchmark cannot rot unnoticed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_bench_fleet_smoke(tmp_path):
    out = tmp_path / "fleet.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench/fleet.py"), "--nodes", "20", "--rounds", "2", "--requests", "10",
                           "--web-workers", "1", "--json", str(out)], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["ingest"]["handled"] >= 60 and result["ingest"]["dropped"] == 0  # + the registry it published itself
    assert result["fleet_list"]["nodes_listed"] == 20
