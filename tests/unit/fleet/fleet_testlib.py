"""Names the ovr_fleet tests share. A module of its own, not conftest.py: every test directory
has a conftest.py, and `from conftest import ...` finds whichever of them was imported last."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import bcrypt

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "files/services/fleet"))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "files/services/common"))  # ovr_common

from ovr_fleet.config import Settings, load_settings

OPERATORS = {"ada": ("admin", "ada-password-123"), "vic": ("viewer", "vic-password-123")}


def basic(name: str, password: str | None = None) -> dict[str, str]:
    password = password if password is not None else OPERATORS[name][1]
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


def write_operators(path: Path) -> None:
    ops = [{"name": n, "role": r, "hash": bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode()} for n, (r, p) in OPERATORS.items()]
    path.write_text(json.dumps({"operators": ops}))


def make_settings(tmp: Path, **env: str) -> Settings:
    ops = tmp / "operators.json"
    if not ops.exists():
        write_operators(ops)
    pw = tmp / "mqtt.password"
    pw.write_text("unused-anonymous-broker\n")
    base = {"OVR_FLEET_DB": str(tmp / "fleet.db"), "OVR_FLEET_OPERATORS_FILE": str(ops),
            "OVR_MQTT_PASSWORD_FILE": str(pw), "OVR_VM_URL": "http://127.0.0.1:9"}
    base.update(env)
    return load_settings(base)
