"""Settings from cloud.env, the map tile budget, and operator verification."""

from __future__ import annotations

import json
import time

import bcrypt
import pytest
from fleet_testlib import OPERATORS, basic, make_settings
from ovr_fleet import tiles
from ovr_fleet.auth import Operators, OperatorsError
from ovr_fleet.config import SettingsError, load_settings, parse_env_file, settings_from
from ovr_fleet.store import tx


def test_defaults_and_env_file(tmp_path):
    s = load_settings({})
    assert str(s.db_path) == "/var/lib/ovr/fleet/fleet.db" and s.mqtt_port == 1883 and s.align_auto == 0.9
    assert s.tiles_limits == {"mapbox": 750000, "esri": 2000000}
    env = tmp_path / "cloud.env"
    env.write_text("# comment\nOVR_MQTT_PORT=1884\nOVR_FLEET_ALIGN_AUTO='0.95'\n")
    assert parse_env_file(env.read_text()) == {"OVR_MQTT_PORT": "1884", "OVR_FLEET_ALIGN_AUTO": "0.95"}
    s = settings_from(env, {"OVR_MQTT_PORT": "1885", "HOME": "/root"})
    assert (s.mqtt_port, s.align_auto) == (1885, 0.95)


@pytest.mark.parametrize(("env", "word"), [
    ({"OVR_FLEET_DB": "relative.db"}, "OVR_FLEET_DB"),
    ({"OVR_MQTT_PORT": "70000"}, "OVR_MQTT_PORT"),
    ({"OVR_FLEET_ALIGN_AUTO": "0.7"}, "ALIGN_REVIEW"),
    ({"OVR_FLEET_ALIGN_AUTO": "nan"}, "OVR_FLEET_ALIGN_AUTO"),
    ({"OVR_FLEET_TILES_LIMITS": "mapbox"}, "OVR_FLEET_TILES_LIMITS"),
    ({"OVR_FLEET_TILES_DEFAULT_PROVIDER": "google"}, "OVR_FLEET_TILES_DEFAULT_PROVIDER"),
    ({"OVR_VM_URL": "localhost:8428"}, "OVR_VM_URL"),
    ({"OVR_FLEET_LOG_LEVEL": "LOUD"}, "OVR_FLEET_LOG_LEVEL"),
    ({"OVR_FLEET_METRIC_SUFFIX": "10s"}, "OVR_FLEET_METRIC_SUFFIX"),
    ({"OVR_FLEET_NODE_URL_TEMPLATE": "javascript:alert('{node_id}')"}, "OVR_FLEET_NODE_URL_TEMPLATE"),
    ({"OVR_FLEET_NODE_URL_TEMPLATE": "{node_id}.example.org"}, "OVR_FLEET_NODE_URL_TEMPLATE"),
])
def test_bad_settings_name_the_variable(env, word):
    with pytest.raises(SettingsError, match=word):
        load_settings(env)


def test_missing_mqtt_password_file_is_named(tmp_path):
    s = load_settings({"OVR_MQTT_PASSWORD_FILE": str(tmp_path / "nope")})
    with pytest.raises(SettingsError, match="OVR_MQTT_PASSWORD_FILE"):
        s.mqtt_password()


def test_tile_budget(conn, tmp_path):
    settings = make_settings(tmp_path, OVR_FLEET_TILES_LIMITS="mapbox=100,esri=200", OVR_FLEET_TILES_DEFAULT_PROVIDER="mapbox")
    month = tiles.month_key()
    st = tiles.status(conn, settings, "acme")
    assert (st["preferred_provider"], st["recommended_provider"]) == ("mapbox", "mapbox")
    assert (st["satellite_allowed"], st["warning"]) == (True, None)
    with tx(conn):
        tiles.add_usage(conn, "mapbox", "fleet-map", "acme", 60)
        tiles.add_usage(conn, "mapbox", "edge-a", "zeta", 35)  # fleet-wide: 95 of 100
    st = tiles.status(conn, settings, "acme")
    assert st["fleet"] == {"mapbox": 95, "esri": 0} and st["deployment"] == {"mapbox": 60, "esri": 0}
    assert st["blocked"] == {"mapbox": True, "esri": False} and st["recommended_provider"] == "esri"
    with tx(conn):
        tiles.set_preferred(conn, "acme", "esri", "ada")
        tiles.add_usage(conn, "esri", "fleet-map", "acme", 195)
    st = tiles.status(conn, settings, "acme")
    assert st["preferred_provider"] == "esri" and st["recommended_provider"] is None and st["satellite_allowed"] is True
    assert "95%" in st["warning"]
    with tx(conn):
        tiles.add_usage(conn, "mapbox", "fleet-map", "acme", 5)
        tiles.add_usage(conn, "esri", "fleet-map", "acme", 5)
    st = tiles.status(conn, settings, "acme")
    assert st["satellite_allowed"] is False and "disabled" in st["warning"]
    assert tiles.status(conn, settings, "acme", "1999-01")["fleet"] == {"mapbox": 0, "esri": 0}
    assert st["month"] == month


def test_tile_counts_are_bounded_per_call_and_per_source(conn, tmp_path):
    settings = make_settings(tmp_path, OVR_FLEET_TILES_LIMITS="mapbox=1000,esri=200000")
    with pytest.raises(tiles.OverLimit, match="at most 5000"), tx(conn):
        tiles.add_usage(conn, "esri", "fleet-map", "acme", 5001, source="vic", settings=settings)
    with tx(conn):
        tiles.add_usage(conn, "mapbox", "fleet-map", "acme", 60, source="vic", settings=settings)
        tiles.add_usage(conn, "mapbox", "edge-a", "zeta", 40, source="vic", settings=settings)  # 100: 10 % of 1000
    with pytest.raises(tiles.OverLimit, match="vic has counted 100 mapbox tiles"), tx(conn):
        tiles.add_usage(conn, "mapbox", "fleet-map", "acme", 1, source="vic", settings=settings)
    with tx(conn):
        tiles.add_usage(conn, "mapbox", "fleet-map", "acme", 1, source="ada", settings=settings)
    st = tiles.status(conn, settings, "acme", source="vic")
    assert st["fleet"]["mapbox"] == 101 and st["source"]["counted"] == {"mapbox": 100, "esri": 0}
    assert st["source"]["cap"] == {"mapbox": 100, "esri": 20000}
    # Last month's counts do not hold this month's back.
    assert tiles.status(conn, settings, "acme", "1999-01", source="vic")["source"]["counted"] == {"mapbox": 0, "esri": 0}


def test_operators_verify_with_roles_and_cache(tmp_path, monkeypatch):
    path = tmp_path / "ops.json"
    ops = [{"name": n, "role": r, "hash": bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode()} for n, (r, p) in OPERATORS.items()]
    # Caddy's hashes are $2a$; python's bcrypt checks those too.
    ops.append({"name": "old", "hash": bcrypt.hashpw(b"old-password-123", bcrypt.gensalt(4, prefix=b"2a")).decode()})
    path.write_text(json.dumps({"operators": ops}))
    o = Operators(path)
    ada = o.verify(basic("ada")["Authorization"])
    assert ada is not None and ada.is_admin
    vic = o.verify(basic("vic")["Authorization"])
    assert vic is not None and vic.role == "viewer" and not vic.is_admin
    old = o.verify(basic("old", "old-password-123")["Authorization"])
    assert old is not None and old.role == "admin"  # no role: admin, as before roles existed
    for bad in (None, "", "Bearer x", "Basic !!!", basic("ada", "wrong")["Authorization"], basic("nobody", "x")["Authorization"],
                "Basic " + "YWRh"):
        assert o.verify(bad) is None
    # Cached: one bcrypt check for 200 requests with the same credential (counted, not timed:
    # 200 cost-4 checks take only ~0.2 s, so a time limit passed with no cache at all).
    checks = []
    real_checkpw = bcrypt.checkpw
    monkeypatch.setattr(bcrypt, "checkpw", lambda pw, h: checks.append(h) or real_checkpw(pw, h))
    fresh = Operators(path)
    for _ in range(200):
        assert fresh.verify(basic("ada")["Authorization"]) is not None
    assert len(checks) == 1
    assert fresh.verify(basic("ada", "wrong")["Authorization"]) is None and len(checks) == 2  # a wrong one is not cached
    assert fresh.verify(basic("ada", "wrong")["Authorization"]) is None and len(checks) == 3
    # A changed file is re-read: a removed operator is refused at once.
    time.sleep(0.01)
    path.write_text(json.dumps({"operators": [o_ for o_ in ops if o_["name"] != "ada"]}))
    assert o.verify(basic("ada")["Authorization"]) is None


@pytest.mark.parametrize("content", ["not json", '{"operators": [{"name": "x"}]}',
                                     '{"operators": [{"name": "x", "hash": "h", "role": "god"}]}'])
def test_broken_operators_file_is_an_error(tmp_path, content):
    path = tmp_path / "ops.json"
    path.write_text(content)
    with pytest.raises(OperatorsError):
        Operators(path).verify(basic("ada")["Authorization"])
