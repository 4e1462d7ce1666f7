"""Helpers shared by the testinfra suites of every Molecule scenario.

Test hosts are podman containers; testinfra reaches them with its podman backend
(`podman exec`, much faster than going through Ansible). Tests that need a specific
host of a multi-host scenario ask for it by name with the ``hosts`` fixture.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable

import pytest
import testinfra


def container_ip(name: str, network: str | None = None) -> str:
    """Address of a test container on one of its podman networks (the first if not named)."""
    out = subprocess.run(
        ["podman", "inspect", "--format", "{{json .NetworkSettings.Networks}}", name],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    networks = json.loads(out)
    if network:
        return networks[network]["IPAddress"]
    return next(iter(networks.values()))["IPAddress"]


def tcp_connect(address: str, port: int, timeout: float = 2.0) -> str:
    """Try a TCP connection; return 'open', 'refused' or 'timeout' (dropped)."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return "open"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"
    except OSError as exc:  # e.g. host unreachable
        return f"error: {exc}"


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 1.0, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last value: {last!r})")


@pytest.fixture(scope="session")
def hosts() -> Callable[[str], testinfra.host.Host]:
    cache: dict[str, testinfra.host.Host] = {}

    def get(name: str) -> testinfra.host.Host:
        if name not in cache:
            cache[name] = testinfra.get_host(f"podman://{name}")
        return cache[name]

    return get
