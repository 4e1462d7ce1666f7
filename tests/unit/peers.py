"""The real peers the unit tests run against: Debian's mosquitto and our Telegraf build.

Never skips: without them the tests fail and say how to get them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_TELEGRAF = REPO / "scripts/build-telegraf.sh"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def locate_mosquitto() -> str:
    path = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None)
    if not path:
        pytest.fail("mosquitto not found (apt-get install mosquitto): the end-to-end tests need a real broker")
    return path


def locate_telegraf() -> str:
    """The real Telegraf: $TELEGRAF_BIN, else whatever scripts/build-telegraf.sh prints (built once)."""
    path = os.environ.get("TELEGRAF_BIN")
    if not path:
        try:
            proc = subprocess.run([str(BUILD_TELEGRAF)], capture_output=True, text=True, timeout=1200, check=False)
        except OSError as exc:
            pytest.fail(f"cannot run {BUILD_TELEGRAF}: {exc}; set TELEGRAF_BIN to a telegraf binary")
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            pytest.fail(f"{BUILD_TELEGRAF} failed (rc={proc.returncode}); set TELEGRAF_BIN or fix the build:\n"
                        + proc.stderr[-3000:])
        path = lines[-1]
    if not os.access(path, os.X_OK):
        pytest.fail(f"TELEGRAF_BIN={path!r} is not an executable file")
    return path
