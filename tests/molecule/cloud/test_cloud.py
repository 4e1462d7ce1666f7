"""The cloud alone (molecule/cloud), seen from the WAN by a probe that plays the edges.

cloud-1 runs VictoriaMetrics, Mosquitto and Caddy; cloud-probe holds mosquitto_pub/sub,
vmagent and paho-mqtt. Two nodes (edge-a, edge-b) exist as credentials only; the tests use
edge-a's credentials and try to act as edge-b. Credentials and the CA are read from the
controller files the role wrote, exactly as the edge role reads them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import struct
import subprocess
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
from conftest import container_ip, tcp_connect, wait_for

CLOUD = "cloud-1"
PROBE = "cloud-probe"
NETWORK = "ovr-wan-c"
URL = f"https://{CLOUD}"
CA = "/tmp/cloud-ca.pem"  # on the probe
RUN = uuid.uuid4().hex[:8]  # keeps this run's series and messages apart from earlier ones


def credentials_dir() -> Path:
    eph = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    assert eph, "run through molecule (MOLECULE_EPHEMERAL_DIRECTORY is not set)"
    return Path(eph) / "credentials"


def secret(*parts: str) -> str:
    return (credentials_dir().joinpath(*parts)).read_text().strip()


def put_file(container: str, path: str, content: str, mode: str = "0600") -> None:
    subprocess.run(["podman", "exec", "-i", container, "sh", "-c", f"umask 077; cat > {path}; chmod {mode} {path}"],
                   input=content.encode(), check=True)


@pytest.fixture(scope="module")
def cloud(hosts):
    return hosts(CLOUD)


@pytest.fixture(scope="module")
def probe(hosts):
    host = hosts(PROBE)
    # The CA the role copied to the controller: what an edge is given to trust the cloud.
    put_file(PROBE, CA, (credentials_dir() / "cloud-ca.pem").read_text(), "0644")
    return host


def https(probe, path: str, user: tuple[str, str] | None = None, data: str | None = None,
          extra: str = "") -> tuple[int, str]:
    """Request through Caddy from the probe; returns (status, body)."""
    args = ["curl", "-s", "-g", "--cacert", CA, "-w", shlex.quote("\\n%{http_code}"), extra]
    if user:
        args += ["-u", shlex.quote(f"{user[0]}:{user[1]}")]
    if data is not None:
        args += ["--data-binary", shlex.quote(data)]
    out = probe.run(" ".join(args) + " " + shlex.quote(URL + path))
    assert out.rc == 0, out.stderr
    body, _, code = out.stdout.rpartition("\n")
    return int(code), body


def operator() -> tuple[str, str]:
    return ("alice", secret("operator-alice"))


def node(name: str, kind: str = "remote_write") -> tuple[str, str]:
    return (name, secret(name, kind))


def export(probe, match: str) -> list[dict]:
    # Samples become searchable after VictoriaMetrics' next in-memory flush (up to seconds);
    # flushing now keeps the tests quick. Test-only: the endpoint is loopback, not routed.
    subprocess.run(["podman", "exec", CLOUD, "curl", "-sf", "-X", "POST", "http://127.0.0.1:8428/internal/force_flush"],
                   check=True, capture_output=True)
    code, body = https(probe, "/api/v1/export?match[]=" + urllib.parse.quote(match), user=operator())
    assert code == 200, body
    return [json.loads(line) for line in body.splitlines() if line.strip()]


# ---- services --------------------------------------------------------------------------

@pytest.mark.parametrize("unit", ["victoria-metrics.service", "mosquitto.service", "caddy.service", "nftables.service"])
def test_units_enabled_and_active(cloud, unit):
    svc = cloud.service(unit)
    assert svc.is_enabled
    assert svc.is_running


@pytest.mark.parametrize(("unit", "user", "caps", "rw"), [
    ("victoria-metrics.service", "_victoria-metrics", "", ["/var/lib/victoria-metrics"]),
    ("mosquitto.service", "mosquitto", "", ["/var/lib/mosquitto"]),
    ("caddy.service", "caddy", "cap_net_bind_service", ["/var/lib/caddy"]),
])
def test_daemons_are_sandboxed(cloud, unit, user, caps, rw):
    props = cloud.service(unit).systemd_properties
    assert props["User"] == user
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "PrivateDevices": "yes", "RestrictNamespaces": "yes"}.items():
        assert props[key] == value, key
    assert props.get("CapabilityBoundingSet", "") == caps
    assert props.get("ReadWritePaths", "").split() == rw
    # Enforced on the running process: its own user, no privilege gain, only the capability it
    # needs, and / read-only in its mount namespace.
    pid = props["MainPID"]
    status = cloud.file(f"/proc/{pid}/status").content_string
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M)
    expected_capbnd = "0000000000000400" if caps else "0000000000000000"  # bit 10 = CAP_NET_BIND_SERVICE
    assert re.search(rf"^CapBnd:\s+{expected_capbnd}$", status, re.M), status
    uid = cloud.check_output(f"id -u {user}")
    assert re.search(rf"^Uid:\s+{uid}\s", status, re.M)
    mounts = {f[4]: f[5].split(",") for f in (line.split() for line in
              cloud.file(f"/proc/{pid}/mountinfo").content_string.splitlines())}
    assert "ro" in mounts["/"], mounts["/"]
    assert all("rw" in mounts[p] for p in rw), mounts


def test_listeners(cloud):
    """VictoriaMetrics, the fleet's MQTT listener and the WebSocket listener are loopback only,
    Caddy's admin API listens on no TCP port at all; the edges' MQTT and HTTPS are public."""
    listening: dict[int, set[str]] = {}
    for line in cloud.check_output("ss -Hltn").splitlines():
        addr, _, port = line.split()[3].rpartition(":")
        listening.setdefault(int(port), set()).add(addr)
    for port in (8428, 1883, 9001):
        assert listening.get(port) == {"127.0.0.1"}, (port, listening.get(port))
    assert 2019 not in listening, listening[2019]
    assert listening[8883] == {"0.0.0.0", "[::]"}
    for port in (80, 443):
        assert listening[port] == {"*"}


def test_caddy_admin_api_is_for_caddy_and_root_only(cloud):
    """Issue 10 item 10: the admin API (no authentication, loads any config) was on localhost:2019,
    open to every local process, the ovr user's included."""
    sock = "/run/caddy/admin.sock"
    assert cloud.file(sock).is_socket
    assert (cloud.file("/run/caddy").user, cloud.file("/run/caddy").mode) == ("caddy", 0o700)
    out = cloud.run(f"setpriv --reuid=ovr --regid=ovr --clear-groups curl -s --max-time 3 --unix-socket {sock} http://caddy/config/")
    assert out.rc != 0, out.stdout[:200]
    out = cloud.run("setpriv --reuid=ovr --regid=ovr --clear-groups curl -s --max-time 3 http://127.0.0.1:2019/config/")
    assert out.rc != 0, out.stdout[:200]
    # Root still reaches it (Caddy wants an empty Host on a Unix socket), and `systemctl reload
    # caddy` (caddy reload through the socket) works.
    assert cloud.run(f"curl -sf --max-time 3 -H 'Host: ' --unix-socket {sock} http://caddy/config/ -o /dev/null").rc == 0
    cloud.run_test("systemctl reload caddy")
    assert cloud.service("caddy.service").is_running


def test_wan_sees_only_https_and_mqtt():
    ip = container_ip(CLOUD, NETWORK)
    for port in (80, 443, 8883):
        assert tcp_connect(ip, port) == "open", port
    for port in (8428, 1883, 9001):
        assert tcp_connect(ip, port, timeout=1) != "open", port


# ---- rendered files and credentials ------------------------------------------------------

def test_controller_credentials():
    for name in ("edge-a", "edge-b"):
        for kind in ("remote_write", "mqtt"):
            path = credentials_dir() / name / kind
            assert path.stat().st_mode & 0o777 == 0o600
            assert re.fullmatch(r"[A-Za-z0-9]{32}", path.read_text().strip())
    assert secret("edge-a", "remote_write") != secret("edge-a", "mqtt") != secret("edge-b", "mqtt")


def test_ca_on_controller_is_the_clouds(cloud):
    assert (credentials_dir() / "cloud-ca.pem").read_text() == cloud.file("/etc/ovr/tls/ca.crt").content_string
    key = cloud.file("/etc/ovr/tls/ca.key")
    assert (key.user, key.group, key.mode) == ("root", "root", 0o600)
    cert = cloud.check_output("openssl x509 -in /etc/ovr/tls/server.crt -noout -ext subjectAltName")
    assert "DNS:cloud-1" in cert


def test_cloud_env(cloud):
    env = cloud.file("/etc/ovr/cloud.env")
    assert (env.user, env.group, env.mode) == ("root", "ovr", 0o640)
    values = dict(line.split("=", 1) for line in env.content_string.splitlines() if line and not line.startswith("#"))
    # The fleet service's own OVR_FLEET_* settings are checked by test_fleet_api.py.
    assert {k: v for k, v in values.items() if not k.startswith("OVR_FLEET_")} == {
        "OVR_VM_URL": "http://127.0.0.1:8428",
        "OVR_MQTT_HOST": "127.0.0.1",
        "OVR_MQTT_PORT": "1883",
        "OVR_MQTT_USERNAME": "ovr-fleet",
        "OVR_MQTT_PASSWORD_FILE": "/etc/ovr/secrets/mqtt-fleet.password",
    }
    pw = cloud.file(values["OVR_MQTT_PASSWORD_FILE"])
    assert (pw.user, pw.group, pw.mode) == ("root", "ovr", 0o640)
    assert pw.content_string == secret(CLOUD, "mqtt-fleet")


def test_no_plaintext_secret_on_disk_but_the_fleet_file(cloud):
    secrets = [secret(n, k) for n in ("edge-a", "edge-b") for k in ("remote_write", "mqtt")] + [operator()[1]]
    files = "/etc/caddy/Caddyfile /etc/mosquitto/mosquitto.conf /etc/mosquitto/ovr/* /etc/ovr/cloud.env"
    content = cloud.check_output(f"cat {files}")
    for value in secrets:
        assert value not in content
    for f in ("/etc/mosquitto/ovr/users.passwd", "/etc/mosquitto/ovr/users.acl"):
        assert cloud.file(f).mode == 0o600
    assert cloud.file("/etc/caddy/Caddyfile").mode == 0o640


# ---- HTTP: writes only as yourself, reads only as an operator ------------------------------

@pytest.mark.parametrize("path", ["/api/v1/write", "/write"])
def test_write_paths_refuse_anonymous_and_wrong_credentials(probe, path):
    assert https(probe, path, data="x v=1")[0] == 401
    assert https(probe, path, user=("edge-a", "wrong"), data="x v=1")[0] == 401
    assert https(probe, path, user=("edge-b", secret("edge-a", "remote_write")), data="x v=1")[0] == 401
    assert https(probe, path, user=node("edge-a", "mqtt"), data="x v=1")[0] == 401  # the MQTT password is not a write one
    assert https(probe, path, user=operator(), data="x v=1")[0] == 401  # operators read, they do not write


@pytest.mark.parametrize("path", ["/api/v1/query?query=up", "/api/v1/query_range?query=up&step=60",
                                  "/api/v1/export?match[]=up", "/api/v1/series?match[]=up", "/api/v1/labels",
                                  "/api/v1/label/__name__/values", "/api/v1/status/tsdb"])
def test_read_paths_need_an_operator(probe, path):
    assert https(probe, path)[0] == 401
    assert https(probe, path, user=node("edge-a"))[0] == 401
    assert https(probe, path, user=("alice", "wrong-password"))[0] == 401
    assert https(probe, path, user=operator())[0] == 200


@pytest.mark.parametrize("path", ["/", "/metrics", "/api/v1/import", "/api/v1/import/prometheus",
                                  "/api/v1/admin/tsdb/delete_series?match[]=up", "/snapshot/create", "/internal/force_flush",
                                  "/flags", "/api/v1/write/extra", "/vmui/", "/mqtt/x"])
def test_everything_else_is_not_found(probe, path):
    for user in (None, node("edge-a"), operator()):
        assert https(probe, path, user=user, data="x v=1")[0] == 404, (path, user)


def test_path_tricks_do_not_reach_other_endpoints(probe):
    code, _ = https(probe, "/write/../api/v1/import", user=node("edge-a"), data='{"metric":{"__name__":"x"},"values":[1],"timestamps":[1]}',
                    extra="--path-as-is")
    assert code in (401, 403, 404)


def test_influx_write_is_stamped_with_the_authenticated_node(probe):
    """edge-a's credentials, a payload that claims edge-b and a query string that asks for
    edge-b as well: VictoriaMetrics stores the series as edge-a."""
    ts = (int(time.time()) - 60) * 10**9
    name = f"ovr_test_influx_{RUN}"
    line = f"{name},node_id=edge-b,system_id=s1 value=42 {ts}"
    code, body = https(probe, "/write?extra_label=node_id%3Dedge-b&db=edge-b", user=node("edge-a"), data=line)
    assert code == 204, body
    found = wait_for(lambda: export(probe, f"{name}_value"), timeout=20, what=f"{name}_value in the fleet TSDB")
    assert [s["metric"] for s in found] == [{"__name__": f"{name}_value", "node_id": "edge-a", "system_id": "s1"}]
    assert found[0]["values"] == [42]


def test_influx_precision_passes_but_cannot_smuggle_a_label(probe):
    ts_ms = (int(time.time()) - 60) * 1000
    name = f"ovr_test_precision_{RUN}"
    code, _ = https(probe, "/write?precision=ms", user=node("edge-a"), data=f"{name} value=1 {ts_ms}")
    assert code == 204
    # An unknown precision is read as nanoseconds; the smuggled extra_label stays inside it.
    code, _ = https(probe, "/write?precision=ms%26extra_label%3Dnode_id%3Dedge-b", user=node("edge-a"),
                    data=f"{name} value=2 {(ts_ms + 1000) * 10**6}")
    assert code == 204

    def both():
        found = export(probe, f"{name}_value")
        return found if sum(len(s["values"]) for s in found) == 2 else None
    found = wait_for(both, timeout=20, what="both samples")
    assert [s["metric"]["node_id"] for s in found] == ["edge-a"]
    assert found[0]["timestamps"] == [ts_ms, ts_ms + 1000]


def _vmagent(probe, unit: str, port: int, user: str, password: str, label_node: str) -> None:
    """A vmagent on the probe that remote-writes to the cloud the way an edge does (Prometheus
    remote write, basic auth, the cloud CA) — but claiming to be `label_node`."""
    put_file(PROBE, f"/tmp/{unit}.password", password)
    probe.run(f"systemctl stop {unit}; systemctl reset-failed {unit}; rm -rf /tmp/{unit}")
    cmd = (f"systemd-run --unit {unit} /usr/bin/vmagent -httpListenAddr=127.0.0.1:{port} "
           f"-remoteWrite.url='{URL}/api/v1/write?extra_label=node_id={label_node}' "
           f"-remoteWrite.basicAuth.username={user} -remoteWrite.basicAuth.passwordFile=/tmp/{unit}.password "
           f"-remoteWrite.tlsCAFile={CA} -remoteWrite.tmpDataPath=/tmp/{unit} -remoteWrite.flushInterval=200ms "
           f"-remoteWrite.label=node_id={label_node}")
    probe.check_output(cmd)
    wait_for(lambda: probe.run(f"curl -sf http://127.0.0.1:{port}/health").rc == 0, timeout=10, what=f"{unit} up")


def test_remote_write_is_stamped_with_the_authenticated_node(probe):
    name = f"ovr_test_rw_{RUN}"
    _vmagent(probe, "probe-vmagent-a", 8431, "edge-a", secret("edge-a", "remote_write"), "edge-b")
    try:
        ts = (int(time.time()) - 60) * 10**9
        probe.check_output(f"curl -sf --data-binary '{name},node_id=edge-b value=7 {ts}' http://127.0.0.1:8431/write")
        found = wait_for(lambda: export(probe, f"{name}_value"), timeout=30, what=f"{name}_value via remote write")
        assert [s["metric"]["node_id"] for s in found] == ["edge-a"]
        metrics = probe.check_output("curl -s http://127.0.0.1:8431/metrics")
        assert re.search(r'vmagent_remotewrite_requests_total\{[^}]*status_code="2XX"\} [1-9]', metrics)
    finally:
        probe.run("systemctl stop probe-vmagent-a")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def remote_write_body(labels: dict[str, str], value: float, ts_ms: int) -> bytes:
    """A Prometheus remote-write request (WriteRequest protobuf, snappy): one series, one sample."""
    import cramjam

    series = b"".join(_field(1, _field(1, k.encode()) + _field(2, v.encode())) for k, v in labels.items())
    series += _field(2, b"\x09" + struct.pack("<d", value) + b"\x10" + _varint(ts_ms))
    return bytes(cramjam.snappy.compress_raw(_field(1, series)))


def test_protocol_handshake_never_carries_data_past_the_node_label(probe):
    """Issue 10 item 3: `?get_vm_proto_version` went to VictoriaMetrics without extra_label, and
    VictoriaMetrics 1.79 (Debian 12) ingests that request's body: a node wrote as another node.
    Caddy now answers the handshake itself; a real remote-write body sent with it stores nothing."""
    name = f"ovr_test_handshake_{RUN}"
    body = remote_write_body({"__name__": name, "node_id": "edge-b"}, 7.0, int(time.time() * 1000))
    subprocess.run(["podman", "exec", "-i", PROBE, "sh", "-c", "cat > /tmp/rw-body"], input=body, check=True)
    a = node("edge-a")
    curl = (f"curl -s --cacert {CA} -u {shlex.quote(a[0] + ':' + a[1])} -H 'Content-Encoding: snappy' "
            "-H 'Content-Type: application/x-protobuf' --data-binary @/tmp/rw-body -w '\\n%{http_code}' ")
    out = probe.check_output(curl + shlex.quote(f"{URL}/api/v1/write?get_vm_proto_version=1"))
    assert out.splitlines() == ["1", "200"], out  # trixie's VictoriaMetrics speaks its own protocol
    out = probe.check_output(curl + shlex.quote(f"{URL}/api/v1/write"))
    assert out.strip() == "204", out
    found = wait_for(lambda: export(probe, name), timeout=30, what=f"{name} written without the handshake")
    assert [s["metric"]["node_id"] for s in found] == ["edge-a"]
    assert len(found[0]["values"]) == 1, found  # the handshake's copy was never stored


def test_remote_write_with_a_wrong_password_is_refused(probe):
    name = f"ovr_test_rw_bad_{RUN}"
    _vmagent(probe, "probe-vmagent-x", 8432, "edge-a", "not-the-password", "edge-a")
    try:
        probe.check_output(f"curl -sf --data-binary '{name} value=1' http://127.0.0.1:8432/write")
        wait_for(lambda: re.search(r'vmagent_remotewrite_requests_total\{[^}]*status_code="401"\} [1-9]',
                                   probe.check_output("curl -s http://127.0.0.1:8432/metrics")),
                 timeout=20, what="vmagent to be answered 401")
        assert export(probe, f"{name}_value") == []
    finally:
        probe.run("systemctl stop probe-vmagent-x")


# ---- MQTT: a node publishes only as itself and reads only what is addressed to it ---------

def mqtt(probe, tool: str, user: tuple[str, str] | None, args: str, version: str = "311"):
    auth = f"-u {user[0]} -P {shlex.quote(user[1])}" if user else ""
    return probe.run(f"{tool} -V {version} -h {CLOUD} -p 8883 --cafile {CA} {auth} {args}")


def fleet(cloud, tool: str, args: str):
    """A client of the fleet service's loopback listener, on the cloud itself, as the scenario's
    molecule-fleet user (the fleet's rights; with ovr-fleet's own credential it would take the
    fleet worker's client id and close the worker's session)."""
    password = shlex.quote(secret("mqtt-molecule-fleet"))
    return cloud.run(f"{tool} -h 127.0.0.1 -p 1883 -u molecule-fleet -P {password} {args}")


def test_anonymous_mqtt_is_refused_on_every_listener(cloud, probe):
    out = mqtt(probe, "mosquitto_pub", None, "-t ovr/edge-a/status -m x")
    assert out.rc != 0 and "not authorised" in out.stderr
    out = cloud.run("mosquitto_pub -h 127.0.0.1 -p 1883 -t ovr/x -m x")
    assert out.rc != 0 and "not authorised" in out.stderr
    # 9001 (WebSocket) is reached only through Caddy: see test_browser_mqtt_over_websocket.


def test_wrong_mqtt_credentials_are_refused(probe):
    # (Operators may connect on 8883 too: one user list serves every listener, see mosquitto.conf.j2;
    # their ACL only lets them read.)
    for user in (("edge-a", "wrong"), ("edge-b", secret("edge-a", "mqtt")), node("edge-a", "remote_write")):
        out = mqtt(probe, "mosquitto_pub", user, "-t ovr/edge-a/status -m x")
        assert out.rc != 0 and "not authorised" in out.stderr, user[0]


def test_node_publishes_only_under_its_own_id(cloud, probe):
    a = node("edge-a", "mqtt")
    # MQTT 5 reports the refusal to the publisher; the broker drops the message either way.
    out = mqtt(probe, "mosquitto_pub", a, f"-q 1 -r -t ovr/edge-b/status -m forged-{RUN}", version="5")
    assert "Not authorized" in out.stderr
    out = mqtt(probe, "mosquitto_pub", a, f"-q 1 -r -t ovr/edge-a/status -m online-{RUN}")
    assert out.rc == 0, out.stderr
    out = mqtt(probe, "mosquitto_pub", a, f"-q 1 -r -t ovr/registry/events -m forged-{RUN}", version="5")
    assert "Not authorized" in out.stderr
    seen = fleet(cloud, "mosquitto_sub", "-v --retained-only -W 3 -t ovr/edge-a/status -t ovr/edge-b/status "
                                         "-t ovr/registry/events").stdout
    assert f"ovr/edge-a/status online-{RUN}" in seen
    assert f"forged-{RUN}" not in seen


def test_node_holds_no_retained_topics_beyond_the_protocols(cloud, probe):
    """Issue 10 item 2: a node may create only its few protocol topics (a bound on the retained
    topics one node can make), and cannot forge a command addressed to itself."""
    a = node("edge-a", "mqtt")
    for topic in (f"ovr/edge-a/junk-{RUN}", "ovr/edge-a/cmd/ack", f"ovr/edge-a/x/{RUN}"):
        out = mqtt(probe, "mosquitto_pub", a, f"-q 1 -r -t {topic} -m forged-{RUN}", version="5")
        assert "Not authorized" in out.stderr, (topic, out.stderr)
    seen = fleet(cloud, "mosquitto_sub", "-v --retained-only -W 3 -t 'ovr/edge-a/#'").stdout
    assert f"forged-{RUN}" not in seen


def test_broker_drops_a_payload_over_its_size_limit(cloud, probe):
    a = node("edge-a", "mqtt")
    out = mqtt(probe, "mosquitto_pub", a, f"-q 1 -r -t ovr/edge-a/realtime -m small-{RUN}")
    assert out.rc == 0, out.stderr
    probe.check_output("head -c 4194400 /dev/zero | tr '\\0' x > /tmp/ovr-big-payload")
    out = mqtt(probe, "mosquitto_pub", a, "-q 1 -r -t ovr/edge-a/realtime -f /tmp/ovr-big-payload")
    assert out.rc == 0, out.stderr  # MQTT 3.1.1: the broker acknowledges and drops it
    seen = fleet(cloud, "mosquitto_sub", "-v --retained-only -W 3 -t ovr/edge-a/realtime").stdout
    assert seen.strip() == f"ovr/edge-a/realtime small-{RUN}", seen[:200]
    fleet(cloud, "mosquitto_pub", "-r -n -t ovr/edge-a/realtime")


def test_node_reads_only_what_is_addressed_to_it(cloud, probe):
    for topic in ("ovr/edge-a/cmd/align", "ovr/edge-b/cmd/align", "ovr/registry/events", f"ovr/events/{RUN}/end",
                  "ovr/edge-b/status"):
        out = fleet(cloud, "mosquitto_pub", f"-q 1 -r -t {topic} -m for-{topic.replace('/', '_')}-{RUN}")
        assert out.rc == 0, out.stderr
    seen = mqtt(probe, "mosquitto_sub", node("edge-a", "mqtt"),
                "-v --retained-only -W 3 -t 'ovr/#' -t 'ovr/+/cmd/#' -t 'ovr/edge-b/#' -t 'ovr/edge-a/cmd/#' "
                "-t 'ovr/registry/#' -t 'ovr/events/#'").stdout
    topics = {line.split()[0] for line in seen.splitlines() if RUN in line}
    assert topics == {"ovr/edge-a/cmd/align", "ovr/registry/events", f"ovr/events/{RUN}/end"}, seen
    for topic in ("ovr/edge-a/cmd/align", "ovr/edge-b/cmd/align", f"ovr/events/{RUN}/end", "ovr/edge-b/status"):
        fleet(cloud, "mosquitto_pub", f"-r -n -t {topic}")  # clear the retained test messages


def test_a_node_cannot_take_over_another_nodes_session(cloud, probe):
    """The broker uses the user name as client id: edge-a connecting with client id edge-b is
    still edge-a, so it cannot kick edge-b's bridge off nor take its persistent session."""
    since = cloud.check_output("date '+%Y-%m-%d %H:%M:%S'")
    out = mqtt(probe, "mosquitto_pub", node("edge-a", "mqtt"), f"-i edge-b -q 1 -t ovr/edge-a/status -m id-{RUN}")
    assert out.rc == 0, out.stderr
    log = cloud.check_output(f"journalctl -u mosquitto --since '{since}' -o cat")
    ids = re.findall(r"New client connected from \S+ as (\S+) \(.*u'edge-a'\)", log)
    assert ids and set(ids) == {"edge-a"}, log


def test_a_loopback_client_cannot_take_over_a_nodes_session(cloud, probe):
    """Issue 10 item 4: on the loopback listener a client chose its id, so a holder of the fleet's
    password could connect as a node and close that node's bridge session. The id is the user
    name there too: the node's persistent session and its queue stay intact."""
    a = node("edge-a", "mqtt")
    session = "-c -i edge-a -q 1 -t 'ovr/edge-a/cmd/#' -v -W 5 -C 20"
    mqtt(probe, "mosquitto_sub", a, session)  # the node's persistent session (drained), now offline
    assert fleet(cloud, "mosquitto_pub", f"-q 1 -t ovr/edge-a/cmd/hold -m loopback-queued-{RUN}").rc == 0
    since = cloud.check_output("date '+%Y-%m-%d %H:%M:%S'")
    out = fleet(cloud, "mosquitto_sub", "-c -i edge-a -q 1 -t 'ovr/edge-a/cmd/#' -v -W 2")
    assert out.rc in (0, 27), out.stderr  # 27: -W timed out, as expected
    log = cloud.check_output(f"journalctl -u mosquitto --since '{since}' -o cat")
    assert "Client edge-a already connected" not in log and " as edge-a " not in log, log
    assert re.search(r"New client connected from 127\.0\.0\.1:\d+ as molecule-fleet ", log), log
    out = mqtt(probe, "mosquitto_sub", a, session)  # the node comes back: its queue is intact
    assert f"ovr/edge-a/cmd/hold loopback-queued-{RUN}" in out.stdout, (out.stdout, out.stderr)


# ---- browsers: MQTT over WebSocket through Caddy ----------------------------------------

WS_SCRIPT = r"""
import base64, json, sys, threading
import paho.mqtt.client as mqtt
http_user, mqtt_user, expect, client_id = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
result, connected, arrived = {"messages": []}, threading.Event(), threading.Event()
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, transport="websockets", client_id=client_id, reconnect_on_failure=False)
headers = {"Authorization": "Basic " + base64.b64encode(":".join(http_user).encode()).decode()} if http_user else {}
c.ws_set_options(path="/mqtt", headers=headers)
c.tls_set(ca_certs="/tmp/cloud-ca.pem")
if mqtt_user:
    c.username_pw_set(*mqtt_user)
def on_connect(cl, userdata, flags, rc, props):
    result["connack"] = str(rc)
    if not rc.is_failure:
        cl.subscribe("ovr/#")
    connected.set()
def on_message(cl, userdata, m):
    result["messages"].append([m.topic, m.payload.decode(errors="replace")])
    if m.payload.decode(errors="replace") == expect:
        arrived.set()
c.on_connect, c.on_message = on_connect, on_message
try:
    c.connect("cloud-1", 443, 10)
except Exception as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
    sys.exit(0)
c.loop_start()
connected.wait(5)
if result.get("connack") == "Success":
    arrived.wait(5)
    c.publish("ovr/edge-a/cmd/align", "from-operator", qos=1, retain=True).wait_for_publish(3)
c.disconnect()
c.loop_stop()
print(json.dumps(result))
"""


def ws(probe, http_user, mqtt_user, client_id: str = "probe-ws") -> dict:
    out = probe.run(f"python3 -c {shlex.quote(WS_SCRIPT)} {shlex.quote(json.dumps(http_user))} "
                    f"{shlex.quote(json.dumps(mqtt_user))} live-{RUN} {shlex.quote(client_id)}")
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_browser_mqtt_over_websocket(cloud, probe):
    op = list(operator())
    fleet(cloud, "mosquitto_pub", f"-q 1 -r -t ovr/edge-a/realtime -m live-{RUN}")
    # No HTTP credentials: Caddy refuses the upgrade (401, the handshake fails).
    assert "WebsocketConnectionError" in ws(probe, None, op).get("error", "")
    # A node's credentials are not an operator's.
    assert "WebsocketConnectionError" in ws(probe, list(node("edge-a", "mqtt")), list(node("edge-a", "mqtt"))).get("error", "")
    # Through Caddy, but anonymous on the WebSocket listener: the broker refuses.
    assert ws(probe, op, None).get("connack") == "Not authorized"
    # An operator watches everything and publishes nothing.
    seen = ws(probe, op, op)
    assert seen.get("connack") == "Success", seen
    assert ["ovr/edge-a/realtime", f"live-{RUN}"] in seen["messages"]
    assert not any(p == "from-operator" for _, p in seen["messages"])
    assert "from-operator" not in fleet(cloud, "mosquitto_sub", "-v --retained-only -W 2 -t ovr/edge-a/cmd/align").stdout
    fleet(cloud, "mosquitto_pub", "-r -n -t ovr/edge-a/realtime")


def test_an_operator_cannot_take_over_a_nodes_session(cloud, probe):
    """Issue 10 item 4: an operator (even a viewer) connecting on /mqtt with a node's client id
    closed that node's bridge session, and with a clean session discarded its queued commands."""
    a = node("edge-a", "mqtt")
    session = "-c -i edge-a -q 1 -t 'ovr/edge-a/cmd/#' -v -W 5 -C 20"
    mqtt(probe, "mosquitto_sub", a, session)  # the node's persistent session (drained), now offline
    assert fleet(cloud, "mosquitto_pub", f"-q 1 -t ovr/edge-a/cmd/hold -m queued-{RUN}").rc == 0
    since = cloud.check_output("date '+%Y-%m-%d %H:%M:%S'")
    assert ws(probe, list(operator()), list(operator()), client_id="edge-a").get("connack") == "Success"
    log = cloud.check_output(f"journalctl -u mosquitto --since '{since}' -o cat")
    assert "Client edge-a already connected" not in log and " as edge-a " not in log, log
    out = mqtt(probe, "mosquitto_sub", a, session)  # the node comes back: its queue is intact
    assert f"ovr/edge-a/cmd/hold queued-{RUN}" in out.stdout, (out.stdout, out.stderr)


# ---- what a node may write: names, labels, body size, a series budget per node -------------
# Issue 10 item 9. The role's defaults (roles/cloud/defaults/main.yml), spelled out so that each
# test states the limit it crosses.
MAX_LABELS = 16           # cloud_write_max_labels
MAX_LABEL_VALUE_LEN = 256  # cloud_write_max_label_value_len
MAX_BODY = 16 * 2**20      # cloud_write_max_body (16MiB)
SERIES_PER_NODE = 10_000   # cloud_write_series_per_node
GATE = "ovr-writegate.service"


def post_file(probe, path: str, user: tuple[str, str], local: str, headers: tuple[str, ...] = ()) -> tuple[int, str]:
    """POST the probe's file `local` through Caddy; returns (status, body)."""
    hdr = " ".join(f"-H {shlex.quote(h)}" for h in headers)
    out = probe.run(f"curl -s --cacert {CA} -u {shlex.quote(user[0] + ':' + user[1])} {hdr} "
                    f"--data-binary @{local} -w '\\n%{{http_code}}' {shlex.quote(URL + path)}")
    assert out.rc == 0, out.stderr
    body, _, code = out.stdout.rpartition("\n")
    return int(code), body


def remote_write(probe, user: tuple[str, str], labels: dict[str, str], value: float = 1.0) -> tuple[int, str]:
    body = remote_write_body(labels, value, int(time.time() * 1000))
    subprocess.run(["podman", "exec", "-i", PROBE, "sh", "-c", "cat > /tmp/rw-limit-body"], input=body, check=True)
    return post_file(probe, "/api/v1/write", user, "/tmp/rw-limit-body",
                     ("Content-Encoding: snappy", "Content-Type: application/x-protobuf"))


def stored_count(probe, selector: str) -> int:
    subprocess.run(["podman", "exec", CLOUD, "curl", "-sf", "-X", "POST", "http://127.0.0.1:8428/internal/force_flush"],
                   check=True, capture_output=True)
    code, body = https(probe, "/api/v1/query?query=" + urllib.parse.quote(f"count({selector})"), user=operator())
    assert code == 200, body
    result = json.loads(body)["data"]["result"]
    return int(result[0]["value"][1]) if result else 0


def test_a_metric_name_edges_do_not_send_is_refused(probe):
    """Only the names the edges' vmagent sends (edge_vmagent_cloud_metrics) reach the fleet TSDB."""
    bad, good = f"evil_{RUN}", f"ovr_test_names_{RUN}"
    code, body = https(probe, "/write", user=node("edge-b"), data=f"{bad} value=1")
    assert code == 400, body
    assert f"{bad}_value" in body and "metric name" in body, body
    code, body = remote_write(probe, node("edge-b"), {"__name__": f"{bad}_rw"})
    assert code == 400 and f"{bad}_rw" in body, body
    # One bad series does not cost the good ones of the same request.
    code, body = https(probe, "/write", user=node("edge-b"), data=f"{good} value=1\n{bad}_mixed value=1")
    assert code == 204, body
    wait_for(lambda: export(probe, f"{good}_value"), timeout=20, what=f"{good}_value stored")
    assert export(probe, f'{{__name__=~"{bad}.*"}}') == []


def test_a_series_with_too_many_labels_or_a_too_long_value_is_refused(probe):
    name = f"ovr_test_labels_{RUN}"
    many = {"__name__": f"{name}_many"} | {f"l{i}": "v" for i in range(MAX_LABELS + 4)}
    code, body = remote_write(probe, node("edge-b"), many)
    assert code == 400 and "labels" in body and str(MAX_LABELS) in body, body
    long = {"__name__": f"{name}_long", "system_id": "x" * (MAX_LABEL_VALUE_LEN + 200)}
    code, body = remote_write(probe, node("edge-b"), long)
    assert code == 400 and "system_id" in body and str(MAX_LABEL_VALUE_LEN) in body, body
    code, body = https(probe, "/write", user=node("edge-b"), data=f"{name}_influx,system_id={'y' * 1000} value=1")
    assert code == 400 and "system_id" in body, body
    # Within the limits the same shapes are stored.
    ok = {"__name__": f"{name}_ok", "system_id": "x" * MAX_LABEL_VALUE_LEN} | {f"l{i}": "v" for i in range(MAX_LABELS - 2)}
    assert remote_write(probe, node("edge-b"), ok)[0] == 204
    wait_for(lambda: export(probe, f"{name}_ok"), timeout=20, what=f"{name}_ok stored")
    assert export(probe, f'{{__name__=~"{name}_(many|long|influx_value)"}}') == []


def test_a_body_over_the_size_limit_is_answered_413(probe):
    probe.check_output(f"head -c {MAX_BODY + 1024} /dev/zero > /tmp/rw-too-big")
    for path, headers in (("/api/v1/write", ("Content-Encoding: snappy", "Content-Type: application/x-protobuf")),
                          ("/write", ())):
        code, body = post_file(probe, path, node("edge-b"), "/tmp/rw-too-big", headers)
        assert code == 413, (path, code, body[:300])
        assert "16777216" in body or "16MiB" in body, body[:300]
    probe.run("rm -f /tmp/rw-too-big")


def test_a_node_writing_100k_new_series_is_limited_and_the_others_are_not(cloud, probe):
    """edge-a's vmagent (as an edge sends) writes 100,000 new series: at most its budget is stored,
    its vmagent is answered 2XX (no retry loop, its queue drains), its normal series keep arriving,
    and edge-b still writes new series."""
    # A known starting point: the budget lives in the gate's memory (a restart forgets it), and an
    # earlier verify run of this scenario may have spent edge-a's.
    if cloud.run(f"systemctl restart {GATE}").rc == 0:  # (without a gate, the count below fails)
        wait_for(lambda: cloud.run("curl -sf http://127.0.0.1:8430/health").rc == 0, timeout=20, what="the gate up")
    normal, flood = f"ovr_test_normal_{RUN}", f"ovr_test_flood_{RUN}"
    _vmagent(probe, "probe-vmagent-f", 8433, "edge-a", secret("edge-a", "remote_write"), "edge-a")
    try:
        t0 = int(time.time()) - 120
        probe.check_output(f"curl -sf --data-binary '{normal},system_id=s1 value=1 {t0 * 10**9}' http://127.0.0.1:8433/write")
        wait_for(lambda: export(probe, f"{normal}_value"), timeout=30, what="the normal series before the flood")

        probe.check_output(
            "python3 -c " + shlex.quote(
                f"import sys\nfor i in range(100000): sys.stdout.write('{flood},k=k%d value=1 {(t0 + 1) * 10**9}\\n' % i)")
            + " > /tmp/flood.txt")
        probe.check_output("curl -sf --data-binary @/tmp/flood.txt http://127.0.0.1:8433/write")

        def drained():
            m = probe.check_output("curl -s http://127.0.0.1:8433/metrics")
            pending = re.findall(r"^vmagent_remotewrite_pending_data_bytes\{[^}]*\} (\S+)", m, re.M)
            sent = re.search(r'vmagent_remotewrite_requests_total\{[^}]*status_code="2XX"\} (\d+)', m)
            return sent and int(sent.group(1)) >= 10 and pending and all(float(p) == 0 for p in pending)
        wait_for(drained, timeout=60, what="edge-a's vmagent to send the flood and drain its queue")
        m = probe.check_output("curl -s http://127.0.0.1:8433/metrics")
        assert not re.search(r'vmagent_remotewrite_requests_total\{[^}]*status_code="(4|5)\d\d"\} [1-9]', m), m

        stored = stored_count(probe, f"{flood}_value")
        assert 0 < stored <= SERIES_PER_NODE, stored
        # The node's normal series keeps arriving through the same vmagent.
        probe.check_output(f"curl -sf --data-binary '{normal},system_id=s1 value=2 {(t0 + 2) * 10**9}' http://127.0.0.1:8433/write")
        wait_for(lambda: [s for s in export(probe, f"{normal}_value") if len(s["values"]) == 2], timeout=30,
                 what="the normal series' second sample after the flood")
        # Another node is unaffected: its new series are stored.
        other = f"ovr_test_other_{RUN}"
        assert https(probe, "/write", user=node("edge-b"), data=f"{other},system_id=s1 value=3")[0] == 204
        found = wait_for(lambda: export(probe, f"{other}_value"), timeout=20, what="edge-b's new series")
        assert [s["metric"]["node_id"] for s in found] == ["edge-b"]
        # The refusals are counted per node, for the operator.
        metrics = cloud.check_output("curl -s http://127.0.0.1:8430/metrics")
        refused = re.search(r'^ovr_writegate_series_refused_total\{node_id="edge-a",reason="series_budget"\} (\d+)',
                            metrics, re.M)
        assert refused and int(refused.group(1)) >= 100_000 - SERIES_PER_NODE, metrics[:2000]
    finally:
        probe.run("systemctl stop probe-vmagent-f; rm -f /tmp/flood.txt")
        cloud.run(f"systemctl restart {GATE}")  # give edge-a its budget back for later tests
