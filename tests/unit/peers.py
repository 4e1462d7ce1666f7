"""The real peers the unit tests run against (Debian's mosquitto, our Telegraf build) and the
helpers every suite shares: free ports, waiting for a port, a process with a log, a fake clock.

Never skips: without them the tests fail and say how to get them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_TELEGRAF = REPO / "scripts/build-telegraf.sh"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    """Until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


class FakeClock:
    """A clock the test moves: pass it where the code takes a `clock` callable."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Proc:
    """A real process with its output in a log file; stop() ends it (TERM, then KILL)."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log
        self.log = open(log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """End a child: SIGTERM, and SIGKILL if it is still there after `timeout` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


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
