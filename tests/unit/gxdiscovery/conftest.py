"""Fixtures for tests/unit/gxdiscovery (helpers live in gxd_helpers.py)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))  # works with any --import-mode
sys.path.insert(0, str(HERE.parents[2] / "files/services/gxdiscovery"))
sys.path.insert(0, str(HERE.parents[2] / "files/services/common"))  # ovr_common

from gxd_helpers import Broker, Node, Observer, Sim  # noqa: E402


@pytest.fixture
def node(tmp_path: Path, telegraf_bin: str) -> Node:
    return Node(tmp_path / "node", telegraf_bin)


@pytest.fixture
def gx_factory(tmp_path: Path, mosquitto_bin: str) -> Iterator[Callable[..., tuple[Broker, Sim]]]:
    """Start a broker + simulator pair (one simulated GX); everything is stopped at the end."""
    started: list[Broker | Sim] = []

    def make(portal: str, users: dict[str, str] | None = None, auth: tuple[str, str] | None = None,
             tls: tuple[Path, Path] | None = None, **sim_kwargs: object) -> tuple[Broker, Sim]:
        broker = Broker(tmp_path / f"broker-{portal}", users=users, tls=tls).start()
        started.append(broker)
        sim = Sim(broker, portal, tmp_path, auth=auth, **sim_kwargs).start()  # type: ignore[arg-type]
        started.append(sim)
        return broker, sim

    yield make
    for thing in reversed(started):
        with contextlib.suppress(Exception):  # teardown must go on
            thing.stop()


@pytest.fixture
def observers() -> Iterator[list[Observer]]:
    made: list[Observer] = []
    yield made
    for o in made:
        o.close()
