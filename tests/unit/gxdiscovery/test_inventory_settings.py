"""gx_inventory.json validation and the environment contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ovr_gxdiscovery.inventory import GxConfig, InventoryError, load_inventory, parse_inventory, read_password
from ovr_gxdiscovery.settings import ENV, SettingsError, load_settings, parse_env_file

SRC = "/etc/ovr/gx_inventory.json"


def test_role_format_with_defaults() -> None:
    gxs = parse_inventory({"systems": [
        {"name": "main", "host": "192.168.1.50"},
        {"name": "aft", "host": "venus-2.local", "tls": True, "insecure_skip_verify": True,
         "username": "ovr", "password_file": "/etc/ovr/secrets/gx-aft.password", "system_id": "aft-bank"},
        {"name": "v6", "host": "fd00::5", "port": 1884},
    ]}, SRC)
    assert gxs[0] == GxConfig(name="main", host="192.168.1.50", port=1883)
    assert gxs[0].url == "tcp://192.168.1.50:1883"
    assert gxs[1].port == 8883 and gxs[1].url == "ssl://venus-2.local:8883"
    assert gxs[2].url == "tcp://[fd00::5]:1884"


def test_bare_list_is_accepted() -> None:
    assert parse_inventory([{"name": "a", "host": "h"}], SRC)[0].name == "a"
    assert parse_inventory([], SRC) == []


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"host": "h"}], "entry 1: 'name' must be lowercase"),
        ([{"name": "Main", "host": "h"}], "'name' must be lowercase"),
        ([{"name": "a"}], "entry 1 ('a'): 'host' must be a hostname or an IP address, got None"),
        ([{"name": "a", "host": "h/x"}], "'host' must be a hostname"),
        ([{"name": "a", "host": "h", "port": 0}], "'port' must be an integer 1..65535, got 0"),
        ([{"name": "a", "host": "h", "port": True}], "'port' must be an integer"),
        ([{"name": "a", "host": "h", "tls": "yes"}], "'tls' must be true or false, got 'yes'"),
        ([{"name": "a", "host": "h", "ca_file": "/x.pem"}], "need \"tls\": true"),
        ([{"name": "a", "host": "h", "tls": True, "ca_file": "x.pem"}], "'ca_file' must be an absolute path"),
        ([{"name": "a", "host": "h", "password_file": "/p"}], "'password_file' needs a 'username'"),
        ([{"name": "a", "host": "h", "password": "secret"}], "unknown key(s) password"),
        ([{"name": "a", "host": "h", "system_id": "Pro 6005"}], "'system_id' must be lowercase"),
        ([{"name": "a", "host": "h", "portal_id": "N/+"}], "'portal_id' must be the GX's VRM portal id"),
        ([{"name": "a", "host": "h"}, {"name": "a", "host": "i"}], "GX 'a' and 'a' have the same name"),
        ([{"name": "a", "host": "H"}, {"name": "b", "host": "h"}], "have the same host and port"),
        ([{"name": "a", "host": "h", "system_id": "x"}, {"name": "b", "host": "i", "system_id": "x"}], "same system_id 'x'"),
        (["main"], "entry 1: must be an object"),
    ],
)
def test_errors_name_the_file_entry_and_fix(entries: list[object], message: str) -> None:
    with pytest.raises(InventoryError) as exc:
        parse_inventory({"systems": entries}, SRC)
    assert str(exc.value).startswith(SRC)
    assert message in str(exc.value)


def test_errors_never_quote_the_password(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as exc:
        parse_inventory([{"name": "a", "host": "h", "password": "hunter2"}], SRC)
    assert "hunter2" not in str(exc.value)


def test_load_inventory_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="not found"):
        load_inventory(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{systems: ")
    with pytest.raises(InventoryError, match=r"bad.json: not valid JSON"):
        load_inventory(bad)
    bad.write_text(json.dumps({"gx": []}))
    with pytest.raises(InventoryError, match="must be"):
        load_inventory(bad)


def test_read_password(tmp_path: Path) -> None:
    p = tmp_path / "pw"
    gx = GxConfig(name="a", host="h", port=1883, username="u", password_file=str(p))
    p.write_text("s3 cret$\n")
    assert read_password(gx) == "s3 cret$"
    p.write_text("s3cret\r\n")
    assert read_password(gx) == "s3cret"
    p.write_text("")
    with pytest.raises(ValueError, match="exactly one non-empty line"):
        read_password(gx)
    p.write_bytes(b"\xff\xfesecret")
    with pytest.raises(ValueError, match="not UTF-8") as exc:
        read_password(gx)
    assert exc.value.__cause__ is None and exc.value.__suppress_context__
    assert read_password(GxConfig(name="a", host="h", port=1)) is None


def test_settings_defaults_match_the_documented_contract() -> None:
    s = load_settings({"OVR_NODE_ID": "node-04"})
    assert str(s.inventory) == "/etc/ovr/gx_inventory.json"
    assert str(s.systems_file) == "/etc/ovr/gx_systems.json"
    assert str(s.telegraf_conf) == "/etc/ovr/telegraf.d/gx_mqtt_sources.conf"
    assert str(s.state_file) == "/var/lib/ovr/gx-discovery/state.json"
    assert s.reload_command == ("systemctl", "reload", "telegraf.service")
    assert (s.grace_seconds, s.full_republish_seconds, s.lost_after_seconds) == (600, 300, 30)
    assert s.telegraf_conf_group == "telegraf"
    # The whole run stays well inside the 20 s timer period.
    assert s.run_timeout < 20
    readme = (Path(__file__).parents[3] / "files/services/gxdiscovery/README.md").read_text()
    for var, default, _ in ENV.values():
        assert f"`{var}`" in readme, f"{var} is not documented in README.md"
        if default:
            assert default in readme, f"default of {var} ({default}) not in README.md"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "OVR_NODE_ID=''"),
        ({"OVR_NODE_ID": "Node 4"}, "OVR_NODE_ID='Node 4'"),
        ({"OVR_NODE_ID": "n", "OVR_GX_GRACE_SECONDS": "ten"}, "OVR_GX_GRACE_SECONDS='ten': expected a number"),
        ({"OVR_NODE_ID": "n", "OVR_GX_CONNECT_TIMEOUT": "0"}, "OVR_GX_CONNECT_TIMEOUT='0': must be > 0"),
        ({"OVR_NODE_ID": "n", "OVR_GX_STATE_DIR": "state"}, "must be an absolute path"),
        ({"OVR_NODE_ID": "n", "OVR_GX_RELOAD_COMMAND": "systemctl 'reload"}, "OVR_GX_RELOAD_COMMAND"),
    ],
)
def test_settings_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=None) as exc:
        load_settings(env)
    assert message in str(exc.value)


def test_empty_reload_command_and_group() -> None:
    s = load_settings({"OVR_NODE_ID": "n", "OVR_GX_RELOAD_COMMAND": "", "OVR_TELEGRAF_CONF_GROUP": ""})
    assert s.reload_command == () and s.telegraf_conf_group is None


def test_parse_env_file() -> None:
    text = "# comment\nOVR_NODE_ID=node-1\n\nexport OVR_X = \"quoted value\"\n; other\nBROKEN\nOVR_Y='a b'\n"
    assert parse_env_file(text) == {"OVR_NODE_ID": "node-1", "OVR_X": "quoted value", "OVR_Y": "a b"}
