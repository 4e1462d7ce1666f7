"""End to end: real mosquitto on a free loopback port, real Telegraf with inputs.mqtt_consumer
(data_format value/string) + the rendered processor + outputs.file, payloads published with paho."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from telegraf_helpers import (
    Run,
    find_free_port,
    parse_lines,
    render_processor_conf,
    toml_str,
)

P = "c0619ab68e54"

TELEGRAF_CONF = """\
[global_tags]
  node_id = "edge-e2e"
[agent]
  interval = "1s"
  flush_interval = "100ms"
  flush_jitter = "0s"
  omit_hostname = true
[[inputs.mqtt_consumer]]
  servers = ["tcp://127.0.0.1:{port}"]
  topics = ["N/{portal}/#", "ovr-test/ready"]
  qos = 0
  client_id = "ovr-e2e-test"
  data_format = "value"
  data_type = "string"
  [inputs.mqtt_consumer.tags]
    system_id = "sys-e2e"
    gx_host = "127.0.0.1"
[[outputs.file]]
  files = [{out}]
  data_format = "influx"
"""


def _wait(predicate, timeout: float, what: str, procs: list[subprocess.Popen], logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        for p in procs:
            if p.poll() is not None:
                break
        else:
            time.sleep(0.05)
            continue
        break
    tails = "\n".join(f"--- {log}\n{log.read_text()[-3000:] if log.exists() else ''}" for log in logs)
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_gx_mqtt_through_telegraf(telegraf_bin: str, mosquitto_bin: str, tmp_path: Path) -> None:
    port = find_free_port()
    mosq_log, tg_log, out = tmp_path / "mosquitto.log", tmp_path / "telegraf.log", tmp_path / "out.influx"
    (tmp_path / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
    )
    (tmp_path / "d").mkdir()
    (tmp_path / "telegraf.conf").write_text(TELEGRAF_CONF.format(port=port, portal=P, out=toml_str(out)))
    (tmp_path / "d/victron_processor.conf").write_text(
        render_processor_conf(edge_victron_counter_interval_seconds=1)
    )

    procs: list[subprocess.Popen] = []
    client = None
    try:
        with mosq_log.open("w") as f:
            procs.append(subprocess.Popen([mosquitto_bin, "-c", str(tmp_path / "mosquitto.conf")],
                                          stdout=f, stderr=subprocess.STDOUT))
        _wait(lambda: _port_open(port), 10, "mosquitto to listen", procs, [mosq_log])
        with tg_log.open("w") as f:
            procs.append(subprocess.Popen(
                [telegraf_bin, "--config", str(tmp_path / "telegraf.conf"),
                 "--config-directory", str(tmp_path / "d")],
                stdout=f, stderr=subprocess.STDOUT))
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="e2e-publisher")
        client.connect("127.0.0.1", port)
        client.loop_start()

        # Telegraf logs "Connected" before it subscribes: publish a probe (a non-Venus topic the
        # processor passes through unchanged) until it reaches the output file.
        def subscribed() -> bool:
            client.publish("ovr-test/ready", "1", qos=0).wait_for_publish(5)
            time.sleep(0.2)
            return out.exists() and "topic=ovr-test/ready" in out.read_text()
        _wait(subscribed, 20, "telegraf to subscribe", procs, [mosq_log, tg_log])

        def pub(path: str, payload: bytes | str) -> None:
            client.publish(f"N/{P}/{path}", payload, qos=0).wait_for_publish(5)

        def val(x: object) -> str:
            return json.dumps({"value": x})

        pub("system/0/Dc/Battery/Soc", val(76.5))
        pub("vebus/276/Ac/Out/L1/P", val(1200))
        pub("vebus/276/Soc", b"")  # device disappeared
        pub("vebus/276/Ac/Out/P", val(1210))
        pub("vebus/276/Soc", b"  \n")  # blank: the value parser trims it to ""
        pub("vebus/276/Soc", val(None))
        pub("vebus/276/Mode", val("On"))
        pub("vebus/276/Soc", b'\xff\xfe{"value": 1}')  # not UTF-8, not JSON
        pub("vebus/276/Soc", json.dumps({"value": "z" * 1_000_000}))
        pub("settings/0/Settings/SystemSetup/AcInput1", val(3))
        pub("heartbeat", val(1767225600))
        pub("vebus/276/Settings/InverterOutputVoltage", json.dumps({"max": 245, "min": 210, "value": 230}))
        pub("battery/512/Dc/0/Voltage", val(26.7))
        time.sleep(1.3)  # past the 1 s counter interval: the next message triggers a second report
        pub("vebus/276/Soc", b"")
        pub("gps/0/Position/Latitude", val(52.37))
        # Counts after the last report go out with the next message after the interval; on a GX
        # that is at the latest the 3 s heartbeat (filtered itself, but it carries the report).
        time.sleep(1.3)
        pub("heartbeat", val(1767225603))

        def done() -> bool:
            text = out.read_text() if out.exists() else ""
            return "victron_gps_position_latitude" in text and "accepted_total=6i" in text
        _wait(done, 15, "processed metrics in the output file", procs, [tg_log])
    finally:
        if client is not None:
            client.loop_stop()
            client.disconnect()
        for p in reversed(procs):
            _stop(p)

    run = Run(parse_lines(out.read_text()), tg_log.read_text())
    assert run.errors() == [], "no per-message error lines"
    probes = [m for m in run.metrics if m.name == "mqtt_consumer"]
    assert probes and all(m.tags["topic"] == "ovr-test/ready" and m.fields == {"value": "1"} for m in probes)

    base = {"system_id": "sys-e2e", "gx_host": "127.0.0.1", "node_id": "edge-e2e", "portal_id": P}
    got = sorted(((m.name, m.tags, m.fields) for m in run.victron()), key=repr)
    assert got == sorted([
        ("victron_system_dc_battery_soc", base | {"service": "system", "instance": "0"}, {"value": 76.5}),
        ("victron_vebus_ac_out_p", base | {"service": "vebus", "instance": "276", "phase": "L1"}, {"value": 1200.0}),
        ("victron_vebus_ac_out_p", base | {"service": "vebus", "instance": "276"}, {"value": 1210.0}),
        ("victron_vebus_settings_inverteroutputvoltage", base | {"service": "vebus", "instance": "276"}, {"value": 230.0}),
        ("victron_battery_dc_0_voltage", base | {"service": "battery", "instance": "512"}, {"value": 26.7}),
        ("victron_gps_position_latitude", base | {"service": "gps", "instance": "0"}, {"value": 52.37}),
    ], key=repr)

    final = run.final_counters("sys-e2e")
    nonzero = {k: n for k, n in final.items() if n}
    assert nonzero == {
        ("accepted_total", None): 6,
        ("dropped_total", "empty"): 3,
        ("dropped_total", "null"): 1,
        ("dropped_total", "string"): 1,
        ("dropped_total", "not_json"): 1,
        ("dropped_total", "too_large"): 1,
        ("filtered_total", "not_allowlisted"): 1,
        ("filtered_total", "not_service_topic"): 2,
    }
    assert len(final) == 15
    # Time-throttled: one report at the first message and one after each pause (one more only if
    # publishing the first batch itself took longer than the 1 s interval), not one per message.
    reports = [m.fields["accepted_total"] for m in run.counters() if "accepted_total" in m.fields]
    assert 3 <= len(reports) <= 4, reports
    assert reports[0] == 1 and reports[-2:] == [5, 6]
