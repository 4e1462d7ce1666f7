"""Smoke test of the benchmark tool (bench/edge.py), not of speed: a --quick run at 1000 msgs/s
must finish, exit 0 and print the report's sections (its JSON goes to a temporary file). It needs what the
benchmark needs (root for apt-get if mosquitto/victoria-metrics are missing, a Telegraf from
scripts/build-telegraf.sh or $TELEGRAF_BIN, ansible-playbook in the venv)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench/edge.py"
# A cold Telegraf build (scripts/build-telegraf.sh) alone can take minutes; the run itself ~1 min.
TIMEOUT_S = 900

HEADINGS = (
    "== Edge pipeline benchmark",
    "-- Throughput steps",
    "-- CPU per 1,000 msgs/s",
    "-- Real node load",
    "-- Summary vs goals --",
    "max no-loss rate, pipeline (msgs/s)",
    "ratio pipeline / raw",
)


def test_quick_run_prints_the_report(tmp_path: Path) -> None:
    out_json = tmp_path / "edge.json"
    proc = subprocess.Popen(
        [sys.executable, str(BENCH), "--quick", "--max-rate", "1000", "--json", str(out_json)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # the benchmark cleans up its own processes on SIGTERM
        stdout, stderr = proc.communicate(timeout=60)
        raise AssertionError(f"bench/edge.py --quick did not finish in {TIMEOUT_S} s\n{stderr[-4000:]}") from None
    assert proc.returncode == 0, f"rc={proc.returncode}\nstdout:\n{stdout[-3000:]}\nstderr:\n{stderr[-4000:]}"
    missing = [h for h in HEADINGS if h not in stdout]
    assert not missing, f"report lacks {missing}:\n{stdout}"
