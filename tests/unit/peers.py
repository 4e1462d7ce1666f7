"""The real peers the unit tests run against (Debian's mosquitto, our Telegraf build) and the
helpers every suite shares: free ports, waiting for a port or a condition, a process with a
log, a broker, a fake clock. Suites add only what is their own (evlib.py, gxsim_testlib.py,
gxd_helpers.py) and import the rest from here.

Never skips: without them the tests fail and say how to get them.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition",
             interval: float = 0.02) -> Any:
    """Until predicate() is truthy; returns that value, or fails naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


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


class Broker:
    """A real mosquitto on a free 127.0.0.1 port, no persistence; start() returns it, and
    start() after stop() listens on the same port again (empty). Anonymous clients are let in
    unless `users` (name -> password) or a `password_file` is given; `tls` (cert, key) adds a
    TLS listener on `tls_port`; `options` are more lines of mosquitto.conf."""

    def __init__(self, workdir: Path, users: dict[str, str] | None = None,
                 password_file: Path | None = None, tls: tuple[Path, Path] | None = None,
                 options: tuple[str, ...] = ()) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        # As root mosquitto would drop to its own user, who cannot read pytest's tmp dirs.
        conf = [f"user {getpass.getuser()}", "persistence false", "log_dest stderr",
                f"listener {self.port} 127.0.0.1"]
        if tls:
            conf += [f"listener {self.tls_port} 127.0.0.1", f"certfile {tls[0]}", f"keyfile {tls[1]}"]
        if users:
            password_file = workdir / f"passwd-{self.port}"
            password_file.touch(mode=0o600)
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(password_file), user, password],
                               check=True, capture_output=True)
        conf += ["allow_anonymous false", f"password_file {password_file}"] if password_file else ["allow_anonymous true"]
        conf += options
        self.conf = workdir / f"mosquitto-{self.port}.conf"
        self.conf.write_text("\n".join(conf) + "\n")
        self.log_path = workdir / f"mosquitto-{self.port}.log"
        self._proc: Proc | None = None

    def start(self) -> Broker:
        self._proc = Proc([locate_mosquitto(), "-c", str(self.conf)], self.log_path)
        wait_for(lambda: port_open(self.port) and (self.tls_port is None or port_open(self.tls_port)), 10,
                 f"mosquitto on port {self.port} (log: {self.log_path})")
        return self

    def stop(self) -> None:
        if self._proc:
            self._proc.stop()
            self._proc = None
            wait_for(lambda: not port_open(self.port), 10, f"mosquitto to close port {self.port}")


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
