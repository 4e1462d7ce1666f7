"""Shared by every unit test directory: peers.py (real mosquitto/Telegraf, free ports) is
importable, and the session fixtures that locate those real peers live here once."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from peers import locate_mosquitto, locate_telegraf


@pytest.fixture(scope="session")
def telegraf_bin() -> str:
    """The real Telegraf (tests/unit/telegraf overrides it with one that also checks its plugins)."""
    return locate_telegraf()


@pytest.fixture(scope="session")
def mosquitto_bin() -> str:
    return locate_mosquitto()
