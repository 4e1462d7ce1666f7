"""plugins/filter/ovr_mosquitto.py, the one `$7$` hash the cloud and gxsim password files use:
what mosquitto_passwd writes, byte for byte, and the hashes the roles wrote before it was shared."""

from __future__ import annotations

import base64
import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("ovr_mosquitto", ROOT / "plugins" / "filter" / "ovr_mosquitto.py")
assert _spec and _spec.loader
plugin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plugin)

# `mosquitto_passwd -b -c FILE edge s3cret` (Mosquitto 2.0.11): its random salt, its hash.
KNOWN = ("edge", "s3cret",
         "$7$101$nVqMY5ZZjlC6TTcg$GSqgQpeBQHJOs4p9tfuwcOIvu2YH0dOTKore3PqXqsc7607i086J/MVjMGGqO7HxmWrc3C3vM7/WchdUWVwNmw==")


def _salt(field: str) -> tuple[int, bytes]:
    _, kind, iterations, salt, _digest = field.split("$")
    assert kind == "7"
    return int(iterations), base64.b64decode(salt)


def test_known_answer_of_mosquitto_passwd():
    _user, password, field = KNOWN
    iterations, salt = _salt(field)
    assert plugin.mosquitto_pbkdf2(password, salt, iterations) == field


def test_same_as_mosquitto_passwd_here(tmp_path):
    """Against the mosquitto_passwd of this machine, with its salt: another build, the same format."""
    exe = shutil.which("mosquitto_passwd")
    if not exe:
        pytest.skip("mosquitto_passwd not installed (apt-get install mosquitto); the known answer above still ran")
    passwd = tmp_path / "passwd"
    subprocess.run([exe, "-b", "-c", str(passwd), "ovr", "pw:with:colons and spaces"], check=True, capture_output=True)
    user, field = passwd.read_text().strip().split(":", 1)
    assert user == "ovr"
    iterations, salt = _salt(field)
    assert (iterations, len(salt)) == (plugin.ITERATIONS, plugin.SALT_BYTES)
    assert plugin.mosquitto_pbkdf2("pw:with:colons and spaces", salt, iterations) == field


def test_the_roles_keep_the_hashes_they_wrote_before():
    """The cloud's and gxsim's former filters salted from 'ovr-cloud-mosquitto:<seed>' and
    'ovr-gxsim:<seed>'; the templates now pass that prefix, so no password file changes."""
    assert plugin.ovr_mosquitto_hash("s3cret", "ovr-cloud-mosquitto:ovr-demo-cloud:nodes:boat-1") == (
        "$7$101$7G7UO7rlvHctN9s8$ZEazPJxnYzfz5e+SMtVgrO8EDyBPBvmDwSfu8Cckz7jRvCaqokJE6rZh7LWjxq/qoAoqkLEqVpEjVsYidpM6EQ==")
    assert plugin.ovr_mosquitto_hash("s3cret", "ovr-gxsim:gx:ovr-edge") == (
        "$7$101$hQjHJK54SRYRed7i$tQEjUmA8j6T84N3tSFiDGLA4Fdv+NVYHwG90/onC6DuVK/aGeL6e9TyYba3XSCzSdCjVPC9IJgmBPUixxaAbDg==")
    for template, prefix in (("cloud", "'ovr-cloud-mosquitto:'"), ("gxsim", "'ovr-gxsim:'")):
        text = (ROOT / "roles" / template / "templates" / "mosquitto.passwd.j2").read_text()
        assert f"ovr_mosquitto_hash({prefix} ~ inventory_hostname" in text, template


def test_refuses_an_empty_password_or_seed():
    with pytest.raises(AnsibleFilterError):
        plugin.ovr_mosquitto_hash("", "gx:edge")
    with pytest.raises(AnsibleFilterError):
        plugin.ovr_mosquitto_hash("s3cret", "")
