"""End to end: `python -m ovr_gxsim` against a real /usr/sbin/mosquitto on a loopback port."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

from gxsim_testlib import PORTAL, Broker, Collector, Received, SimProcess, wait_port

N = f"N/{PORTAL}/"
SUPPRESS = '{"keepalive-options":["suppress-republish"]}'

StartSim = Callable[..., SimProcess]
MakeClient = Callable[..., Collector]


def on(topic: str) -> Callable[[list[Received]], bool]:
    return lambda msgs: any(m.topic == topic for m in msgs)


def test_retained_serial_reaches_a_late_subscriber_without_keepalive(
    gxsim: StartSim, mqtt_client: MakeClient
) -> None:
    sim = gxsim()
    sim.wait_output("connected to")
    late = mqtt_client(["N/+/system/0/Serial", f"N/{PORTAL}/#"])
    assert late.wait_for(on(N + "system/0/Serial"), timeout=3)
    time.sleep(0.5)  # nothing else arrives while nobody sent a keepalive
    # (Serial comes once per matching subscription; the one-off keepalive marker sent at
    # connect may still be in flight when this client subscribes, it is never retained.)
    msgs = [m for m in late.snapshot() if m.topic != N + "keepalive"]
    assert {m.topic for m in msgs} == {N + "system/0/Serial"}
    assert all(m.retain for m in msgs)
    assert json.loads(msgs[0].payload) == {"value": PORTAL}


def test_keepalive_brings_data_and_expiry_stops_it(
    gxsim: StartSim, mqtt_client: MakeClient
) -> None:
    sim = gxsim(keepalive_timeout="1.5", heartbeat_interval="0.5")
    sim.wait_output("connected to")
    client = mqtt_client([f"N/{PORTAL}/#"])
    client.clear()
    sent = time.monotonic()
    client.publish(f"R/{PORTAL}/keepalive")
    assert client.wait_for(on(N + "full_publish_completed"), timeout=3)
    msgs = client.snapshot()
    topics = {m.topic for m in msgs}
    assert len(topics) > 100
    assert {N + "vebus/276/Mode", N + "system/0/Batteries", N + "gps/0/Position/Latitude"} <= topics
    assert all(json.loads(m.payload)["value"] is not None or "TimeToGo" in m.topic
               for m in msgs if m.topic != N + "keepalive")
    # Heartbeats every 0.5 s while alive, then silence: no nulls, no heartbeats, nothing.
    time.sleep(max(0.0, sent + 1.5 + 0.3 - time.monotonic()))
    beats = [m for m in client.snapshot() if m.topic == N + "heartbeat"]
    assert len(beats) >= 3
    client.clear()
    time.sleep(2.0)
    assert client.snapshot() == []


def test_suppressed_keepalive_gives_changes_but_no_full_republish(
    gxsim: StartSim, mqtt_client: MakeClient
) -> None:
    sim = gxsim()
    sim.wait_output("connected to")
    client = mqtt_client([f"N/{PORTAL}/#"])
    client.clear()
    client.publish(f"R/{PORTAL}/keepalive", SUPPRESS)
    assert client.wait_for(on(N + "heartbeat"), timeout=3)
    time.sleep(2.2)  # two model steps: changed values arrive
    topics = [m.topic for m in client.snapshot()]
    assert N + "full_publish_completed" not in topics
    assert N + "vebus/276/ProductName" not in topics  # static, never changes
    assert len(set(topics) - {N + "heartbeat"}) >= 5


def test_write_is_echoed_on_n_and_bad_writes_are_ignored(
    gxsim: StartSim, mqtt_client: MakeClient
) -> None:
    sim = gxsim()
    sim.wait_output("connected to")
    client = mqtt_client([f"N/{PORTAL}/vebus/276/#", f"N/{PORTAL}/heartbeat"])
    client.publish(f"R/{PORTAL}/keepalive", SUPPRESS)
    assert client.wait_for(on(N + "heartbeat"), timeout=3)
    mode = N + "vebus/276/Mode"
    client.publish(f"W/{PORTAL}/vebus/276/Mode", '{"value": 1}')
    assert client.wait_for(lambda ms: any(m.topic == mode and m.payload == b'{"value":1}'
                                          for m in ms), timeout=3)
    for bad in ['{"value": 9}', '{"value": "2"}', "garbage", ""]:
        client.publish(f"W/{PORTAL}/vebus/276/Mode", bad)
    client.publish(f"W/{PORTAL}/vebus/276/State", '{"value": 1}')
    time.sleep(0.3)
    client.clear()
    client.publish(f"R/{PORTAL}/vebus/276/Mode")
    assert client.wait_for(on(mode), timeout=3)
    assert [m.payload for m in client.snapshot() if m.topic == mode] == [b'{"value":1}']
    assert sim.proc.poll() is None  # still running
    sim.wait_output("write vebus/276/Mode ignored", count=4)
    sim.wait_output("write vebus/276/State ignored: path is read-only")


def test_chaos_payloads_cross_the_broker(gxsim: StartSim, mqtt_client: MakeClient) -> None:
    sim = gxsim(chaos="true", chaos_interval="0.05")
    sim.wait_output("connected to")
    client = mqtt_client([f"N/{PORTAL}/#"])
    client.publish(f"R/{PORTAL}/keepalive", SUPPRESS)
    assert client.wait_for(lambda ms: any(len(m.payload) == 256 * 1024 for m in ms), timeout=5)
    payloads = [m.payload for m in client.snapshot()]
    assert b"" in payloads
    assert b"not json {value: 12.5" in payloads


def test_reconnects_and_republishes_serial_after_broker_restart(
    broker: Broker, gxsim: StartSim, mqtt_client: MakeClient
) -> None:
    sim = gxsim()
    sim.wait_output("connected to")
    broker.stop()
    sim.wait_output("disconnected from broker")
    broker.start()  # same port, empty: persistence is off
    wait_port(broker.port)
    sim.wait_output("connected to", count=2, timeout=15)
    client = mqtt_client(["N/+/system/0/Serial"])
    assert client.wait_for(on(N + "system/0/Serial"), timeout=3)


def test_sigterm_stops_cleanly(gxsim: StartSim) -> None:
    sim = gxsim()
    sim.wait_output("connected to")
    sim.proc.send_signal(signal.SIGTERM)
    assert sim.proc.wait(timeout=5) == 0
    sim.wait_output("stopping")


def test_bad_profile_exits_with_an_error(gxsim: StartSim, tmp_path: Path) -> None:
    bad = tmp_path / "p.json"
    bad.write_text('{"devices": []}')
    sim = gxsim(profile=str(bad))
    assert sim.proc.wait(timeout=5) == 1
    sim.wait_output("profile.devices: expected a non-empty list")
