"""Fixtures for tests/unit/telegraf (helpers live in telegraf_helpers.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # works with any --import-mode

from telegraf_helpers import Run, locate_telegraf, make_runner


@pytest.fixture(scope="session")
def telegraf_bin() -> str:
    return locate_telegraf()


@pytest.fixture
def run_processor(telegraf_bin: str, tmp_path: Path) -> Callable[..., Run]:
    return make_runner(telegraf_bin, tmp_path)
