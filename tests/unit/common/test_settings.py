"""The typed settings table and env files."""

from __future__ import annotations

from pathlib import Path

import pytest
from ovr_common import settings
from ovr_common.settings import SettingsError, Var

TABLE = {
    "port": Var("OVR_X_PORT", "1883", "broker port", settings.integer(1, 65535)),
    "wait": Var("OVR_X_WAIT", "2.5", "seconds", settings.number(0, above=True)),
    "dir": Var("OVR_X_DIR", "/var/lib/x", "state", settings.absolute_path),
    "public": Var("OVR_X_PUBLIC", "true", "public reads", settings.boolean),
    "name": Var("OVR_X_NAME", "", "free text"),
}


def test_defaults_and_types():
    values = settings.load_table(TABLE, {})
    assert values == {"port": 1883, "wait": 2.5, "dir": Path("/var/lib/x"), "public": True, "name": ""}


def test_a_var_unpacks_as_variable_default_help():
    var, default, text = TABLE["port"]
    assert (var, default, text) == ("OVR_X_PORT", "1883", "broker port")


@pytest.mark.parametrize(("env", "message"), [
    ({"OVR_X_PORT": "70000"}, "OVR_X_PORT='70000': must be between 1 and 65535"),
    ({"OVR_X_PORT": "many"}, "OVR_X_PORT='many': expected a number"),
    ({"OVR_X_WAIT": "0"}, "OVR_X_WAIT='0': must be > 0"),
    ({"OVR_X_WAIT": "nan"}, "OVR_X_WAIT='nan'"),
    ({"OVR_X_DIR": "relative"}, "OVR_X_DIR='relative': must be an absolute path"),
    ({"OVR_X_PUBLIC": "maybe"}, "OVR_X_PUBLIC: expected true/false"),
])
def test_errors_name_the_variable(env, message):
    with pytest.raises(SettingsError) as exc:
        settings.load_table(TABLE, env)
    assert message in str(exc.value)


def test_empty_is_default_only_when_asked():
    assert settings.load_table(TABLE, {"OVR_X_PORT": " "}, empty_is_default=True)["port"] == 1883
    with pytest.raises(SettingsError, match="OVR_X_PORT"):
        settings.load_table(TABLE, {"OVR_X_PORT": ""})


def test_env_file_then_environment_and_the_file_is_named(tmp_path):
    env_file = tmp_path / "x.env"
    env_file.write_text("# comment\nOVR_X_PORT=1884\nexport OVR_X_NAME='a b'\n; other\nOVR_X_WAIT=-1\n")
    merged = settings.settings_env(env_file, {"OVR_X_WAIT": "3", "HOME": "/root"})
    assert merged == {"OVR_X_PORT": "1884", "OVR_X_NAME": "a b", "OVR_X_WAIT": "3"}
    env_file.write_text("OVR_X_PORT=0\n")
    with pytest.raises(SettingsError) as exc:
        settings.naming_file(env_file, lambda: settings.load_table(TABLE, settings.settings_env(env_file, {})))
    assert "OVR_X_PORT='0'" in str(exc.value) and str(env_file) in str(exc.value)


def test_missing_env_file(tmp_path):
    assert settings.settings_env(tmp_path / "none.env", {}, missing_ok=True) == {}
    with pytest.raises(SettingsError, match=r"none\.env: not found"):
        settings.settings_env(tmp_path / "none.env", {})


def test_describe_lists_every_variable():
    text = settings.describe(TABLE, "/etc/ovr/x.env")
    assert text.startswith("environment (from /etc/ovr/x.env):")
    assert all(entry.var in text for entry in TABLE.values()) and "[default '1883']" in text
