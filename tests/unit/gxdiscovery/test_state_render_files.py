"""State rules with a fake clock, rendering, and atomic write-if-changed."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest
from ovr_gxdiscovery import files, render, state
from ovr_gxdiscovery.inventory import GxConfig
from ovr_gxdiscovery.state import GxRecord, Names
from ovr_gxdiscovery.telegraf import redact

P = "c0619ab68e54"


def rec(**kw: object) -> GxRecord:
    base: dict[str, object] = {"portal_id": P, "first_seen": 0.0, "online_since": 0.0, "last_seen": 100.0, "last_full": 100.0}
    base.update(kw)
    return GxRecord(**base)  # type: ignore[arg-type]


# ---- keepalive mode ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("record", "now", "expected", "why"),
    [
        (None, 100.0, "full", "first contact"),
        (rec(portal_id="be300d83ff04"), 120.0, "full", "new portal id (was be300d83ff04)"),
        (rec(status=state.LOST), 120.0, "full", "back after lost"),
        (rec(status=state.DROPPED), 120.0, "full", "back after dropped"),
        (rec(status=state.REFUSED), 120.0, "full", "back after refused"),
        (rec(), 120.0, "suppress", ""),
        (rec(), 100.0 + 49.0, "suppress", ""),
        (rec(last_full=None), 120.0, "full", "Telegraf (re)subscribed after the last full republish"),
        (rec(last_seen=380.0, last_full=100.0), 399.9, "suppress", ""),
        (rec(last_seen=380.0, last_full=100.0), 400.0, "full", "periodic"),
        (rec(last_seen=100.0, last_full=100.0), 150.0, "full", "keepalive may have lapsed (50s since the last one)"),
    ],
)
def test_keepalive_mode(record: GxRecord | None, now: float, expected: str, why: str) -> None:
    assert state.keepalive_mode(record, P, now, 300.0) == (expected, why)


# ---- transitions ------------------------------------------------------------------------------

def test_first_success_and_names() -> None:
    names = Names(vebus={276: "Pro 6005-1", 277: "Other"}, system_name="Boat", complete=True)
    r = state.after_success(None, P, "full", names, 10.0)
    assert (r.status, r.first_seen, r.online_since, r.last_seen, r.last_full) == (state.ONLINE, 10.0, 10.0, 10.0, 10.0)
    assert (r.display_name, r.name_source) == ("Pro 6005-1", "vebus/276 CustomName")
    r2 = state.after_success(r, P, "suppress", None, 30.0)
    assert (r2.last_seen, r2.last_full, r2.online_since, r2.display_name) == (30.0, 10.0, 10.0, "Pro 6005-1")


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (Names(vebus={276: ""}, system_name="Boat", complete=True), ("Boat", "SystemName")),
        (Names(vebus={}, system_name="  ", complete=True), (None, None)),  # really gone: portal id fallback
        (Names(vebus={}, system_name="Boat", complete=False), ("Pro 6005-1", "vebus/276 CustomName")),  # maybe missed
        (Names(vebus={}, system_name=None, complete=False), ("Pro 6005-1", "vebus/276 CustomName")),
        (Names(vebus={276: "Renamed"}, complete=False), ("Renamed", "vebus/276 CustomName")),
    ],
)
def test_name_updates(names: Names, expected: tuple[str | None, str | None]) -> None:
    before = rec(display_name="Pro 6005-1", name_source="vebus/276 CustomName")
    after = state.after_success(before, P, "full", names, 200.0)
    assert (after.display_name, after.name_source) == expected


def test_new_portal_behind_the_same_name_starts_afresh() -> None:
    before = rec(display_name="Old", name_source="SystemName", first_seen=1.0)
    after = state.after_success(before, "be300d83ff04", "full", None, 200.0)
    assert (after.portal_id, after.first_seen, after.display_name) == ("be300d83ff04", 200.0, None)


def test_lost_after_grace_and_back() -> None:
    r = rec(last_seen=100.0)
    r = state.after_failure(r, False, "connection refused", 120.0, lost_after=30.0)
    assert r is not None and r.status == state.ONLINE  # one missed run is not a loss
    r = state.after_failure(r, False, "connection refused", 130.0, lost_after=30.0)
    assert r is not None and r.status == state.LOST and r.reason == "connection refused"
    assert state.expire(r, 700.0, grace=600.0).status == state.LOST
    r = state.expire(r, 700.1, grace=600.0)
    assert r.status == state.DROPPED
    back = state.after_success(r, P, "full", None, 800.0)
    assert (back.status, back.online_since, back.reason) == (state.ONLINE, 800.0, None)
    assert state.after_failure(None, False, "x", 1.0, 0.0) is None  # never seen: no record


def test_refused_is_immediate_and_expires_like_lost() -> None:
    r = state.after_failure(rec(), True, "broker refused the login: Not authorized", 101.0, lost_after=30.0)
    assert r is not None and r.status == state.REFUSED
    r = state.after_failure(r, False, "connection refused", 150.0, lost_after=30.0)
    assert r is not None and r.status == state.REFUSED  # not back in Telegraf just because it is unreachable now
    assert state.expire(r, 701.0, 600.0).status == state.DROPPED
    # An online GX that somehow is not seen for longer than the grace also drops.
    assert state.expire(rec(last_seen=0.0), 601.0, 600.0).status == state.DROPPED


def test_state_round_trip_and_broken_files(tmp_path: Path) -> None:
    st = state.State(systems={"a": rec(display_name="Pro 6005-1")}, reload_pending=True)
    path = tmp_path / "state.json"
    path.write_text(st.to_json())
    loaded, warnings = state.load_state(path)
    assert warnings == [] and loaded.systems == st.systems and loaded.reload_pending
    path.write_text("{not json")
    loaded, warnings = state.load_state(path)
    assert loaded.systems == {} and "starting afresh" in warnings[0]
    doc = json.loads(st.to_json())
    doc["systems"]["b"] = {"portal_id": P, "status": "weird"}
    path.write_text(json.dumps(doc))
    loaded, warnings = state.load_state(path)
    assert set(loaded.systems) == {"a"} and "state of GX 'b' ignored" in warnings[0]
    assert state.load_state(tmp_path / "missing.json") == (state.State(), [])


# ---- rendering --------------------------------------------------------------------------------

def test_toml_str_round_trips_through_a_toml_parser() -> None:
    nasty = 'a"b\\c\n\td\x7f\x01é€😀 $$ ${HOME} $USER'
    text = render.toml_str(nasty)
    parsed = tomllib.loads(f"x = {text}")["x"]
    # TOML gives back the value with each "$" doubled; Telegraf's env substitution turns "$$" into "$".
    assert parsed == nasty.replace("$", "$$")


def view(name: str = "main", **gx: object) -> render.InputView:
    return render.InputView(gx=GxConfig(name=name, host="192.168.1.50", port=1883, **gx),  # type: ignore[arg-type]
                            system_id="pro6005-1", portal_id=P, password=gx.get("username") and "pw$1")


def test_telegraf_conf_layout() -> None:
    text = render.render_telegraf("node-04", [view(), view("aft", tls=True, ca_file="/etc/ovr/gx-ca.pem",
                                                             insecure_skip_verify=True, username="ovr")], "/etc/ovr/gx_inventory.json")
    doc = tomllib.loads(text)
    inputs = doc["inputs"]["mqtt_consumer"]
    assert [i["alias"] for i in inputs] == ["gx-aft", "gx-main"]  # sorted by name
    aft, main = inputs
    assert main == {
        "alias": "gx-main", "servers": ["tcp://192.168.1.50:1883"], "topics": [f"N/{P}/#"], "topic_tag": "topic",
        "qos": 0, "client_id": "ovr-node-04-pro6005-1", "persistent_session": False, "connection_timeout": "5s",
        "max_reconnect_interval": "30s", "max_undelivered_messages": 10000,
        "startup_error_behavior": "retry", "data_format": "value",
        "data_type": "string", "tags": {"system_id": "pro6005-1", "portal_id": P, "gx_host": "192.168.1.50"},
    }
    assert aft["servers"] == ["ssl://192.168.1.50:1883"] and aft["tls_ca"] == "/etc/ovr/gx-ca.pem"
    assert aft["insecure_skip_verify"] is True and aft["username"] == "ovr" and aft["password"] == "pw$$1"
    assert "20" not in text.split("\n")[0]  # no timestamp in the header
    empty = render.render_telegraf("node-04", [], "/etc/ovr/gx_inventory.json")
    assert tomllib.loads(empty) == {} and "No GX discovered" in empty


def test_systems_json_is_stable_and_has_no_run_time() -> None:
    views = [
        render.SystemView("b", "pro6005-2", "be300d83ff04", "10.0.0.2", 1883, "lost", 1000.0, 1000.0, 1600.0),
        render.SystemView("a", "pro6005-1", P, "10.0.0.1", 1883, "online", 900.5, None, None),
    ]
    text = render.render_systems("node-04", "demo", views)
    assert text == render.render_systems("node-04", "demo", list(reversed(views)))
    doc = json.loads(text)
    assert doc["schema"] == 1 and doc["node_id"] == "node-04" and doc["deployment_id"] == "demo"
    assert [s["name"] for s in doc["systems"]] == ["a", "b"]
    assert doc["systems"][0] == {"name": "a", "system_id": "pro6005-1", "portal_id": P, "host": "10.0.0.1", "port": 1883,
                                 "status": "online", "since": "1970-01-01T00:15:00Z", "last_seen": None, "drops_at": None}
    assert doc["systems"][1]["drops_at"] == "1970-01-01T00:26:40Z"
    assert "updated_at" not in text


def test_redact() -> None:
    assert redact("user ovr password pa$s and pa$s again", ["pa$s", ""]) == "user ovr password *** and *** again"


# ---- write-if-changed -------------------------------------------------------------------------

def test_write_if_changed_keeps_inode_and_mtime_when_equal(tmp_path: Path) -> None:
    path = tmp_path / "out.conf"
    assert files.write_if_changed(path, b"one\n", 0o640) is True
    st1 = path.stat()
    os.utime(path, ns=(st1.st_atime_ns, st1.st_mtime_ns - 10_000_000_000))  # make any rewrite visible
    st1 = path.stat()
    assert files.write_if_changed(path, b"one\n", 0o640) is False
    st2 = path.stat()
    assert (st2.st_ino, st2.st_mtime_ns) == (st1.st_ino, st1.st_mtime_ns)
    assert files.write_if_changed(path, b"two\n", 0o640) is True
    st3 = path.stat()
    assert st3.st_ino != st1.st_ino and path.read_bytes() == b"two\n" and st3.st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["out.conf"]  # no temporary file left


def test_mode_drift_is_fixed_without_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "out.conf"
    files.write_if_changed(path, b"x", 0o640)
    ino = path.stat().st_ino
    path.chmod(0o644)
    assert files.write_if_changed(path, b"x", 0o640) is False
    assert path.stat().st_mode & 0o777 == 0o640 and path.stat().st_ino == ino


def test_symlink_is_followed(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    target = tmp_path / "state" / "gx_systems.json"
    target.write_text("{}")
    link = tmp_path / "gx_systems.json"
    link.symlink_to(target)
    assert files.write_if_changed(link, b'{"systems": []}\n', 0o644) is True
    assert link.is_symlink() and target.read_bytes() == b'{"systems": []}\n'


def test_write_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(files.WriteError, match=r"cannot write .*/missing/out.conf"):
        files.write_if_changed(tmp_path / "missing" / "out.conf", b"x", 0o640)
    with pytest.raises(files.WriteError, match="group 'no-such-group-here' does not exist"):
        files.resolve_group("no-such-group-here")
