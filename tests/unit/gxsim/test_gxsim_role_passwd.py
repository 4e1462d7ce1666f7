"""roles/gxsim's deterministic Mosquitto password hash (ovr_mosquitto_hash, shared with the cloud),
checked by a real Mosquitto."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from gxsim_testlib import ROOT, Broker

spec = importlib.util.spec_from_file_location("ovr_mosquitto", ROOT / "plugins" / "filter" / "ovr_mosquitto.py")
assert spec and spec.loader
plugin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plugin)
ovr_mosquitto_hash = plugin.ovr_mosquitto_hash


def connect(port: int, username: str | None, password: str | None) -> str:
    """CONNACK reason of a login attempt."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    result: list[str] = []
    done = threading.Event()

    def on_connect(c: mqtt.Client, u: object, f: object, rc: object, p: object) -> None:
        result.append(str(rc))
        done.set()

    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    if username is not None:
        client.username_pw_set(username, password)
    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert done.wait(5), "no CONNACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return result[0]


def test_hash_is_deterministic_and_salted_per_seed() -> None:
    a = ovr_mosquitto_hash("s3cret", "gx:edge")
    assert a == ovr_mosquitto_hash("s3cret", "gx:edge")
    assert a.startswith("$7$101$") and len(a.split("$")) == 5
    assert a != ovr_mosquitto_hash("s3cret", "gx:other")  # another user or host: other salt
    assert a != ovr_mosquitto_hash("s3cret2", "gx:edge")
    with pytest.raises(AnsibleFilterError):
        ovr_mosquitto_hash("", "gx:edge")


def test_mosquitto_accepts_the_hash_and_refuses_others(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text(
        f"edge:{ovr_mosquitto_hash('s3cret', 'gx:edge')}\n"
        f"other:{ovr_mosquitto_hash('pw:with:colons', 'gx:other')}\n"
    )
    passwd.chmod(0o600)
    broker = Broker(tmp_path, password_file=passwd).start()
    try:
        assert connect(broker.port, "edge", "s3cret") == "Success"
        assert connect(broker.port, "other", "pw:with:colons") == "Success"
        assert connect(broker.port, "edge", "wrong") == "Not authorized"
        assert connect(broker.port, "nobody", "s3cret") == "Not authorized"
        assert connect(broker.port, None, None) == "Not authorized"
    finally:
        broker.stop()
