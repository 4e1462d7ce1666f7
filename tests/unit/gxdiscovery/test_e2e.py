"""End to end: the real CLI against real mosquitto brokers with the real GX simulator behind
them, and the real Telegraf for `config check` (and, once, as the daemon reading the result)."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gxd_helpers import SUPPRESS, Broker, Node, Observer, Sim, make_cert, retained, wait_for

PORTAL_A = "c0ffee00000a"
PORTAL_B = "c0ffee00000b"


def gx_entry(name: str, broker: Broker, **extra: object) -> dict[str, object]:
    return {"name": name, "host": "127.0.0.1", "port": broker.port, "tls": False, **extra}


def test_lifecycle_discover_keepalive_lost_grace_back(
    node: Node, gx_factory: Callable[..., tuple[Broker, Sim]], observers: list[Observer]
) -> None:
    broker, sim = gx_factory(PORTAL_A, custom_name="Pro 6005-1")
    obs = Observer(broker, PORTAL_A)
    observers.append(obs)
    node.write_inventory([gx_entry("main", broker)])
    env = {"OVR_GX_GRACE_SECONDS": "3", "OVR_GX_LOST_AFTER_SECONDS": "0"}

    # 1. First contact: portal id and system_id from the vebus CustomName, a full republish,
    #    both outputs written, Telegraf reloaded once.
    mark = obs.mark()
    r = node.run(**env)
    assert r.rc == 0, r.out
    gx = node.by_name()["main"]
    assert (gx["portal_id"], gx["system_id"], gx["status"]) == (PORTAL_A, "pro6005-1", "online")
    conf = node.conf.read_text()
    assert f'topics = ["N/{PORTAL_A}/#"]' in conf
    assert 'client_id = "ovr-node-1-pro6005-1"' in conf
    assert 'servers = ["tcp://127.0.0.1:' in conf
    assert 'data_format = "value"' in conf and 'data_type = "string"' in conf
    assert 'system_id = "pro6005-1"' in conf and f'portal_id = "{PORTAL_A}"' in conf and 'gx_host = "127.0.0.1"' in conf
    assert node.conf.stat().st_mode & 0o777 == 0o640
    assert node.reloads() == 1
    assert obs.keepalives(mark) == [b""], "first contact must send one plain keepalive"
    assert obs.full_republishes(mark) == 1
    assert "keepalive full (first contact)" in r.out
    assert 'name "Pro 6005-1" from vebus/276 CustomName' in r.out
    assert "summary:" in r.out

    # 2. Telegraf was reloaded after the first contact's republish went out: the next run asks
    #    for one more full republish, so the newly subscribed input gets the values that never
    #    change. Outputs stay untouched and Telegraf is not reloaded again.
    stamps = node.stamp()
    mark = obs.mark()
    r = node.run(**env)
    assert r.rc == 0, r.out
    assert obs.keepalives(mark) == [b""]
    assert obs.full_republishes(mark) == 1
    assert "keepalive full (Telegraf (re)subscribed" in r.out
    assert node.stamp() == stamps
    assert node.reloads() == 1

    # 3. Nothing changed: suppress-republish keepalive, no republish, files untouched, no reload.
    mark = obs.mark()
    r = node.run(**env)
    assert r.rc == 0, r.out
    assert obs.keepalives(mark) == [SUPPRESS]
    assert obs.full_republishes(mark) == 0
    assert node.stamp() == stamps
    assert node.reloads() == 1
    assert "keepalive suppress" in r.out

    # The GX stays alive across runs: the simulator (keepalive 4 s) keeps sending heartbeats.
    time.sleep(2.5)
    mark = obs.mark()
    assert node.run(**env).rc == 0
    time.sleep(2.5)
    assert obs.heartbeats(mark) >= 2
    # Keepalives are never retained (a retained R/ would replay on every reconnect).
    assert retained(broker, "R/#") == []

    # 4. Periodic full republish: due after OVR_GX_FULL_REPUBLISH_SECONDS.
    mark = obs.mark()
    r = node.run(OVR_GX_FULL_REPUBLISH_SECONDS="1", **env)
    assert r.rc == 0 and "keepalive full (periodic)" in r.out, r.out
    assert obs.keepalives(mark) == [b""] and obs.full_republishes(mark) == 1
    assert node.stamp() == stamps  # a rename did not happen: nothing to write

    # 4. The GX goes away: reported lost, still in Telegraf's inputs, no reload.
    obs.close()
    observers.remove(obs)
    sim.stop()
    broker.stop()
    r = node.run(**env)
    assert r.rc == 0, r.out
    gx = node.by_name()["main"]
    assert gx["status"] == "lost" and gx["last_seen"] and gx["drops_at"]
    assert node.conf.read_text() == conf
    assert node.reloads() == 1
    assert "lost, last seen" in r.out and "connection refused" in r.out

    # 5. Past the grace period: dropped from both outputs, Telegraf reloaded.
    time.sleep(3.2)
    r = node.run(**env)
    assert r.rc == 0, r.out
    assert node.systems_doc()["systems"] == []
    assert "[[inputs.mqtt_consumer]]" not in node.conf.read_text()
    assert node.reloads() == 2
    assert "dropped from the outputs" in r.out

    # 6. It comes back: re-added with a full republish, reloaded again.
    broker.start()
    sim.start()
    obs = Observer(broker, PORTAL_A)
    observers.append(obs)
    mark = obs.mark()
    r = node.run(**env)
    assert r.rc == 0, r.out
    assert node.by_name()["main"]["status"] == "online"
    assert node.conf.read_text() == conf
    assert node.reloads() == 3
    assert obs.keepalives(mark) == [b""] and obs.full_republishes(mark) == 1
    assert "keepalive full (back after dropped)" in r.out

    # 7. Removed from the inventory: out at once.
    node.write_inventory([])
    r = node.run(**env)
    assert r.rc == 0, r.out
    assert node.systems_doc()["systems"] == [] and node.reloads() == 4
    assert "no longer in" in r.out


def test_two_gx_names_and_a_dead_one_does_not_stall(
    node: Node, gx_factory: Callable[..., tuple[Broker, Sim]], tmp_path: Path
) -> None:
    broker_a, _ = gx_factory(PORTAL_A, custom_name="")  # no vebus name: SystemName is used
    broker_b, _ = gx_factory(PORTAL_B, custom_name="   ", system_name="PRO 6005.2")
    # A "GX" that accepts TCP and then never answers: the connect timeout must bound it.
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def acceptor() -> None:
        hang.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(hang.accept()[0])
            except TimeoutError:
                pass
            except OSError:  # closed at the end of the test
                return

    threading.Thread(target=acceptor, daemon=True).start()
    try:
        node.write_inventory([
            gx_entry("a", broker_a),
            gx_entry("b", broker_b),
            {"name": "hung", "host": "127.0.0.1", "port": hang.getsockname()[1]},
        ])
        r = node.run()
        assert r.rc == 0, r.out
        assert r.seconds < 6, f"a hung GX stalled the run: {r.seconds:.1f}s\n{r.out}"
        systems = node.by_name()
        assert systems["a"]["system_id"] == "pro6005-demo"  # the profile's SystemName "Pro 6005 demo"
        assert systems["b"]["system_id"] == "pro6005-2"
        assert "hung" not in systems
        assert "gx hung (127.0.0.1:" in r.out and "no CONNACK within 1.5s" in r.out
        assert r.out.count("[[inputs.mqtt_consumer]]") == 0  # the conf is not logged
        assert node.conf.read_text().count("[[inputs.mqtt_consumer]]") == 2
    finally:
        stop.set()
        hang.close()
        for s in accepted:
            s.close()


def test_wakes_a_gx_whose_serial_is_not_retained(
    node: Node, gx_factory: Callable[..., tuple[Broker, Sim]], observers: list[Observer]
) -> None:
    broker, _ = gx_factory(PORTAL_A, keepalive_timeout=1.0)
    node.write_inventory([gx_entry("main", broker)])
    assert node.run().rc == 0
    time.sleep(1.5)  # the simulator's keepalive lapses: no more heartbeats
    # Nothing retained any more (as on a GX whose retained Serial is gone).
    subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-t", f"N/{PORTAL_A}/system/0/Serial", "-r", "-n"], check=True)
    assert retained(broker, "N/+/system/0/Serial") == []
    obs = Observer(broker, PORTAL_A)
    observers.append(obs)
    mark = obs.mark()
    r = node.run()
    assert r.rc == 0, r.out
    assert "woken (Serial was not retained)" in r.out
    assert node.by_name()["main"]["status"] == "online"
    assert obs.keepalives(mark)  # the wake-up went to the portal id remembered from run 1


def test_credentials_escaping_telegraf_daemon_and_refused_login(
    node: Node, gx_factory: Callable[..., tuple[Broker, Sim]], telegraf_bin: str
) -> None:
    password = "pa$$ \"w\\o'rd ${HOME} $USER"
    broker, _ = gx_factory(PORTAL_A, users={"ovr": password, "gx": "gxsecret"}, auth=("gx", "gxsecret"),
                           keepalive_timeout=30.0)
    pwfile = node.etc / "gx-main.password"
    pwfile.write_text(password + "\n")
    pwfile.chmod(0o640)
    node.write_inventory([gx_entry("main", broker, username="ovr", password_file=str(pwfile))])

    r = node.run()
    assert r.rc == 0, r.out
    assert node.by_name()["main"]["status"] == "online"
    text = node.conf.read_text()
    assert 'password = "pa$$$$ \\"w\\\\o\'rd $${HOME} $$USER"' in text
    assert node.conf.stat().st_mode & 0o777 == 0o640
    assert password not in r.out

    # The real Telegraf logs in with that conf (so the escaping is right) and the victron processor
    # turns the GX's notifications into victron_* metrics tagged with the discovered identity.
    out = node.root / "metrics.out"
    tg = subprocess.Popen([telegraf_bin, "--config", str(node.main_conf), "--config-directory", str(node.confdir)],
                          env=node.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: out.exists() and "victron_" in out.read_text(), 20, "victron_* metrics from telegraf")
    finally:
        tg.terminate()
        log = tg.communicate(timeout=10)[0].decode(errors="replace")
    metrics = out.read_text()
    assert "system_id=pro6005-1" in metrics and f"portal_id={PORTAL_A}" in metrics, metrics[:2000]
    assert "not Authorized" not in log and password not in log

    # A wrong password: the broker refuses; the GX leaves Telegraf's inputs at once (Telegraf would
    # exit on a refused login), gx_systems.json says refused, the run itself is fine.
    pwfile.write_text("wrong-secret\n")
    r = node.run()
    assert r.rc == 0, r.out
    assert node.by_name()["main"]["status"] == "refused"
    assert "[[inputs.mqtt_consumer]]" not in node.conf.read_text()
    assert node.reloads() == 2
    assert "broker refused the login" in r.out
    assert "wrong-secret" not in r.out and password not in r.out


def test_tls_with_ca_file_or_insecure_skip_verify(
    node: Node, gx_factory: Callable[..., tuple[Broker, Sim]], tmp_path: Path
) -> None:
    ca, cert, key = make_cert(tmp_path)
    broker, _ = gx_factory(PORTAL_A, tls=(cert, key))
    base = {"host": "127.0.0.1", "port": broker.tls_port, "tls": True}
    node.write_inventory([{"name": "untrusted", **base}])
    r = node.run()
    assert r.rc == 0, r.out
    assert "gx untrusted (127.0.0.1:" in r.out and "TLS certificate not trusted" in r.out
    assert node.by_name() == {}
    node.write_inventory([
        # The test CA has no keyUsage extension, like many device CAs: accepted, as Telegraf does.
        {"name": "pinned", **base, "ca_file": str(ca)},
        # The same broker spelled differently (the inventory refuses the same host and port twice).
        {"name": "skip", **base, "host": "localhost", "insecure_skip_verify": True, "system_id": "skip-gx"},
    ])
    r = node.run()
    assert r.rc == 0, r.out
    systems = node.by_name()
    assert set(systems) == {"pinned", "skip"}, r.out
    assert systems["pinned"]["status"] == systems["skip"]["status"] == "online"
    assert f"gx pinned and skip: the same GX (portal {PORTAL_A}) is listed 2 times" in r.out
    conf = node.conf.read_text()  # and Telegraf's config check loaded the CA file
    assert f'servers = ["ssl://127.0.0.1:{broker.tls_port}"]' in conf
    assert f'tls_ca = "{ca}"' in conf and "insecure_skip_verify = true" in conf


def test_invalid_candidate_keeps_the_old_conf(node: Node, gx_factory: Callable[..., tuple[Broker, Sim]]) -> None:
    broker, _ = gx_factory(PORTAL_A, users={"ovr": "s3cret-pw", "gx": "g"}, auth=("gx", "g"))
    pwfile = node.etc / "pw"
    pwfile.write_text("s3cret-pw")
    node.write_inventory([gx_entry("main", broker, username="ovr", password_file=str(pwfile))])
    old = "# an older generation\n"
    node.conf.write_text(old)
    # Another fragment that Telegraf refuses: the candidate cannot be loaded as a whole.
    (node.confdir / "broken.conf").write_text("[[inputs.no_such_plugin]]\n")
    r = node.run()
    assert r.rc == 1, r.out
    assert node.conf.read_text() == old
    assert node.reloads() == 0
    assert "NOT updated" in r.out and "telegraf config check failed" in r.out and "no_such_plugin" in r.out
    assert "s3cret-pw" not in r.out
    assert node.by_name()["main"]["status"] == "online"  # gx_systems.json still tells the truth

    # Fixed: the next run installs it and reloads.
    (node.confdir / "broken.conf").unlink()
    r = node.run()
    assert r.rc == 0, r.out
    assert "[[inputs.mqtt_consumer]]" in node.conf.read_text() and node.reloads() == 1


def test_bad_inventory_fails_clearly_and_writes_nothing(node: Node) -> None:
    node.write_inventory([{"name": "main", "host": "127.0.0.1", "port": "18x3"}])
    r = node.run()
    assert r.rc == 2
    assert f"{node.inventory}: entry 1 ('main'): 'port' must be an integer 1..65535" in r.out
    assert not node.systems.exists() and not node.conf.exists()
    r2 = node.run("--check-inventory", str(node.inventory))
    assert r2.rc == 2 and "'port'" in r2.out


def test_missing_node_id_is_a_settings_error(node: Node) -> None:
    r = node.run(OVR_NODE_ID="")
    assert r.rc == 2 and "OVR_NODE_ID" in r.out


def test_unreadable_password_file_fails_the_run_but_not_the_others(
    node: Node, gx_factory: Callable[..., tuple[Broker, Sim]]
) -> None:
    broker, _ = gx_factory(PORTAL_A)
    node.write_inventory([
        gx_entry("main", broker),
        {"name": "other", "host": "127.0.0.1", "port": 1, "username": "u", "password_file": str(node.etc / "missing")},
    ])
    r = node.run()
    assert r.rc == 1, r.out
    assert f"gx other (127.0.0.1:1): not probed: password_file {node.etc / 'missing'}: No such file" in r.out
    assert node.by_name()["main"]["status"] == "online"


def test_env_file_and_help(node: Node, tmp_path: Path) -> None:
    env_file = tmp_path / "edge.env"
    env = node.env()
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items() if k.startswith("OVR_")))
    node.write_inventory([])
    proc = subprocess.run(
        [os.sys.executable, "-m", "ovr_gxdiscovery", "--env-file", str(env_file)],
        env={"PYTHONPATH": env["PYTHONPATH"], "PATH": os.environ["PATH"]}, capture_output=True, text=True, timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert node.systems_doc()["systems"] == []
    help_text = node.run("--help").out
    for var in ("OVR_NODE_ID", "OVR_GX_INVENTORY", "OVR_GX_GRACE_SECONDS", "OVR_GX_RELOAD_COMMAND"):
        assert var in help_text


def test_dry_run_writes_nothing_and_masks_the_password(
    node: Node, gx_factory: Callable[..., tuple[Broker, Sim]]
) -> None:
    broker, _ = gx_factory(PORTAL_A, users={"ovr": "dry-secret", "gx": "g"}, auth=("gx", "g"))
    pwfile = node.etc / "pw"
    pwfile.write_text("dry-secret")
    node.write_inventory([gx_entry("main", broker, username="ovr", password_file=str(pwfile))])
    r = node.run("--dry-run")
    assert r.rc == 0, r.out
    assert '"system_id": "pro6005-1"' in r.out and 'password = "***"' in r.out
    assert "dry-secret" not in r.out
    assert not node.systems.exists() and not node.conf.exists() and node.reloads() == 0
