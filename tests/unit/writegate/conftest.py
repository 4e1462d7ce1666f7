import sys
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[3] / "files" / "services"
sys.path.insert(0, str(SERVICES / "writegate"))
