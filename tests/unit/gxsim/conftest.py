"""Fixtures for the GX simulator tests (helpers live in gxsim_testlib.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for _p in (HERE, HERE.parents[2] / "files" / "services" / "gxsim"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from gxsim_testlib import (  # noqa: E402
    GXSIM_DIR,
    PORTAL,
    Broker,
    Collector,
    FakeClock,
    SimProcess,
)
from peers import stop_process  # noqa: E402


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path).start()
    yield b
    b.stop()
@pytest.fixture
def gxsim(broker: Broker) -> Iterator[Callable[..., SimProcess]]:
    """Start `python -m ovr_gxsim` against the broker; env overrides as keyword arguments."""
    started: list[SimProcess] = []

    def start(*args: str, port: int | None = None, **env: str) -> SimProcess:
        environ = {
            **os.environ,
            "PYTHONPATH": str(GXSIM_DIR),
            "PYTHONUNBUFFERED": "1",
            "GXSIM_BROKER_PORT": str(port or broker.port),
            "GXSIM_PORTAL_ID": PORTAL,
            **{f"GXSIM_{k.upper()}": v for k, v in env.items()},
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "ovr_gxsim", *args],
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        sim = SimProcess(proc)
        threading.Thread(target=sim._read, daemon=True).start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        stop_process(sim.proc, timeout=5)
@pytest.fixture
def mqtt_client(broker: Broker) -> Iterator[Callable[..., Collector]]:
    made: list[Collector] = []

    def make(topics: list[str], port: int | None = None, **kwargs: str) -> Collector:
        c = Collector(port or broker.port, topics, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()
