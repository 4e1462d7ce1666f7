"""Shared by every unit test directory: peers.py (real mosquitto/Telegraf, free ports) is importable."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
