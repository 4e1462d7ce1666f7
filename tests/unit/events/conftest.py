"""Fixtures for the events service tests: the package on sys.path, settings in a tmp dir, and
session-wide real peers (VictoriaMetrics)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# As on a host: events, ovr_common and gxdiscovery (events reads gx_inventory.json through it).
for _p in (HERE, *(HERE.parents[2] / "files" / "services" / d for d in ("events", "common", "gxdiscovery"))):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from evlib import OPERATOR, VIEWER, Broker, VictoriaMetrics  # noqa: E402  # noqa: E402,F401
from ovr_events.auth import sync_users  # noqa: E402
from ovr_events.config import Settings  # noqa: E402


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    users = tmp_path / "users.json"
    sync_users(users, [{"name": OPERATOR[0], "password": OPERATOR[1], "role": "operator"},
                       {"name": VIEWER[0], "password": VIEWER[1], "role": "viewer"}])
    (tmp_path / "gx_systems.json").write_text(json.dumps({"systems": [
        {"name": "gx1", "system_id": "pro-1", "portal_id": "c0ffee0000e1", "host": "127.0.0.1", "port": 1,
         "status": "online"}]}))
    return Settings(node_id="edge-t", deployment_id="dep-t", data_dir=tmp_path / "data", run_dir=tmp_path / "run",
                    users_file=users, gx_systems=tmp_path / "gx_systems.json",
                    gx_inventory=tmp_path / "gx_inventory.json", control_file=tmp_path / "control.json",
                    vm_url="http://127.0.0.1:9", vmagent_url="http://127.0.0.1:9", vm_timeout=2.0)


@pytest.fixture(scope="session")
def vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    v = VictoriaMetrics(tmp_path_factory.mktemp("vm"))
    yield v
    v.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path).start()
    yield b
    b.stop()
