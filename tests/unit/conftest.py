"""Shared by every unit test directory: peers.py (real mosquitto/Telegraf, free ports) is
importable, and the session fixtures that locate those real peers live here once.

Property-based tests (hypothesis, schemathesis) explore new inputs on every run on a developer's
machine, but run derandomized in CI (CI=true), so a CI run cannot fail by the luck of the draw:
what a local run finds is fixed and its seed printed, then it becomes an explicit test.
HYPOTHESIS_PROFILE=ci|dev overrides the choice."""

import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

sys.path.insert(0, str(Path(__file__).parent))

from peers import locate_mosquitto, locate_telegraf

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(scope="session")
def telegraf_bin() -> str:
    """The real Telegraf (tests/unit/telegraf overrides it with one that also checks its plugins)."""
    return locate_telegraf()


@pytest.fixture(scope="session")
def mosquitto_bin() -> str:
    return locate_mosquitto()
