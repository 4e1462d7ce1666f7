"""ovr_common tests: the package from files/services/common, as on a host's PYTHONPATH."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "files/services/common"))
