"""ovr_fleet tests: the package from files/services/fleet, a fresh database per test, real
mosquitto and VictoriaMetrics where the code talks to them (tests/unit/peers.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "files/services/fleet"))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "files/services/common"))  # ovr_common

from fleet_testlib import OPERATORS, basic, make_settings, write_operators  # noqa: F401
from ovr_fleet.config import Settings
from ovr_fleet.store import open_db
from peers import Broker, free_port


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def conn(settings: Settings):
    c = open_db(settings.db_path)
    yield c
    c.close()


@pytest.fixture
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real mosquitto on a free port, anonymous (the worker's password is ignored)."""
    b = Broker(tmp_path_factory.mktemp("mosquitto"), options=("max_queued_messages 100000",)).start()
    yield b.port
    b.stop()


@pytest.fixture(scope="session")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real VictoriaMetrics (Debian's /usr/bin/victoria-metrics) on a free port."""
    binary = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"
    if not os.access(binary, os.X_OK):
        pytest.fail("victoria-metrics not found (apt-get install victoria-metrics): the VM tests need the real one")
    port = free_port()
    d = tmp_path_factory.mktemp("vm")
    proc = subprocess.Popen([binary, f"-storageDataPath={d}", f"-httpListenAddr=127.0.0.1:{port}", "-search.latencyOffset=0s",
                             "-loggerLevel=ERROR"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 20
    while True:
        try:
            if requests.get(url + "/health", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        if time.time() > deadline:
            proc.kill()
            pytest.fail("victoria-metrics did not become healthy")
        time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(10)
