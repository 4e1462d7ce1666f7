"""The technicians' dashboard on a real edge (molecule/edge), seen from the boat LAN as a phone
sees it: the controller reaches the edge's LAN address, as a phone on the boat's Wi-Fi would.

- Caddy runs sandboxed, its admin API is off, its ports are open to the boat LAN only;
- HTTPS with a certificate for the node's LAN address and names, signed by the fleet's dashboard
  CA kept on the controller (docs/adr/0015); HTTP only redirects (and serves that CA);
- /api/* reaches the events service, whose session cookie is Secure and SameSite;
- Playwright drives Debian's chromium at phone size: log in as the scenario's operator and see
  the GX card with live values from the simulator (files/web/e2e). Screenshots go to build/.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
from conftest import container_ip

EDGE = "edge-1"
SYSTEM = "pro6005-1"
ROOT = Path(__file__).resolve().parents[3]
WEB = ROOT / "files" / "web"
ARTIFACTS = ROOT / "build" / "web-tests"


@pytest.fixture(scope="module")
def edge(hosts):
    return hosts(EDGE)


@pytest.fixture(scope="module")
def lan_ip() -> str:
    return container_ip(EDGE)


@pytest.fixture(scope="module")
def ca_file() -> Path:
    found = sorted(Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]).rglob("web-ca/ca.crt"))
    assert found, "the dashboard CA was not written on the controller (edge_web_ca_dir)"
    return found[0]


def secret(name: str) -> str:
    return (Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / name).read_text().strip()


def https(ip: str, ca: Path, method: str, path: str, body: dict | None = None,
          server_name: str | None = None) -> http.client.HTTPResponse:
    ctx = ssl.create_default_context(cafile=str(ca))
    conn = http.client.HTTPSConnection(server_name or ip, 443, context=ctx, timeout=10)
    if server_name:  # reach the LAN address, ask for the name (as a phone that resolved <node>.local)
        conn.sock = ctx.wrap_socket(socket.create_connection((ip, 443), timeout=10), server_hostname=server_name)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    return conn.getresponse()


def test_caddy_runs_sandboxed_with_no_admin_api(edge):
    svc = edge.service("caddy")
    assert svc.is_enabled and svc.is_running
    props = svc.systemd_properties
    assert props["User"] == "caddy"
    assert props["NoNewPrivileges"] == "yes"
    assert props["ProtectSystem"] == "strict"
    assert props["CapabilityBoundingSet"] == "cap_net_bind_service"
    # Caddy's default admin endpoint is localhost:2019: nothing may listen there.
    assert not edge.socket("tcp://127.0.0.1:2019").is_listening
    score = edge.run("systemd-analyze security --no-pager caddy.service | tail -1")
    assert score.rc == 0, score.stderr
    # "-> Overall exposure level for caddy.service: 2.1 OK :-)"
    level = float(score.stdout.split("caddy.service:")[1].split()[0])
    assert level <= 3.0, score.stdout


def test_https_certificate_from_the_fleet_dashboard_ca(lan_ip, ca_file):
    """A phone that installed the fleet's CA trusts the node by its address and by its .local name."""
    for name in (None, f"{EDGE}.local"):
        resp = https(lan_ip, ca_file, "GET", "/", server_name=name)
        page = resp.read().decode()
        assert resp.status == 200, (name, resp.status)
        assert '<div id="root">' in page
        csp = resp.getheader("Content-Security-Policy", "")
        assert "default-src 'self'" in csp and "connect-src 'self'" in csp, csp
    # An unknown client path gets the app (it routes itself); built assets are cached for good.
    resp = https(lan_ip, ca_file, "GET", "/some/screen")
    assert resp.status == 200 and '<div id="root">' in resp.read().decode()


def test_a_certificate_not_from_the_ca_is_refused(lan_ip, tmp_path):
    """The check above can fail: with another CA the handshake is refused."""
    other = tmp_path / "other.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(tmp_path / "k"), "-out", str(other), "-subj", "/CN=other", "-days", "1"],
                   check=True, capture_output=True)
    with pytest.raises(ssl.SSLCertVerificationError):
        https(lan_ip, other, "GET", "/")


def test_http_redirects_and_serves_the_ca(lan_ip, ca_file):
    conn = http.client.HTTPConnection(lan_ip, 80, timeout=10)
    conn.request("GET", "/events?x=1")
    resp = conn.getresponse()
    assert resp.status == 308 and resp.getheader("Location") == f"https://{lan_ip}/events?x=1"
    conn = http.client.HTTPConnection(lan_ip, 80, timeout=10)
    conn.request("GET", "/ovr-ca.crt")
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.read().decode().strip() == ca_file.read_text().strip()


def test_api_through_caddy_with_a_secure_session_cookie(lan_ip, ca_file):
    assert https(lan_ip, ca_file, "GET", "/api/health").status == 200
    resp = https(lan_ip, ca_file, "POST", "/api/auth/login",
                 {"username": "molecule-op", "password": secret("events-operator")})
    assert resp.status == 200, resp.read()
    cookie = resp.getheader("Set-Cookie", "")
    assert cookie.startswith("ovr_events_session=")
    attrs = [a.strip().lower() for a in cookie.split(";")]
    assert "secure" in attrs and "httponly" in attrs and "samesite=strict" in attrs, cookie
    # The events service is still not reachable from the LAN directly.
    assert subprocess.run(["curl", "-s", "-m", "3", f"http://{lan_ip}:8088/api/health"]).returncode != 0


def test_firewall_opens_the_dashboard_to_the_boat_lan_only(edge, lan_ip):
    rule = edge.file("/etc/nftables.d/ovr-edge-web.nft").content_string
    accepts = [line for line in rule.splitlines() if line.startswith("add rule")]
    assert accepts, rule
    # Every accept names its sources: the LAN's network, never "any source".
    net = edge.check_output(f"ip -4 -o route show scope link | awk '/{lan_ip.rsplit('.', 1)[0]}\\./ {{print $1}}'")
    for line in accepts:
        assert "ip saddr" in line and net.strip() in line, (line, net)
    assert "edge-web" in edge.check_output("nft list table inet ovr")


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium (make deps)")
def test_phone_logs_in_and_sees_the_gx_live(lan_ip):
    """The Playwright spec (files/web/e2e) in Debian's chromium at phone size; fails when it fails."""
    npx = shutil.which("npx")
    assert npx, "Node's npx is needed on the controller (make deps)"
    env = {**os.environ,
           "OVR_WEB_URL": f"https://{lan_ip}",
           "OVR_WEB_USER": "molecule-op",
           "OVR_WEB_PASSWORD": secret("events-operator"),
           "OVR_WEB_SYSTEM": SYSTEM,
           "OVR_WEB_ARTIFACTS": str(ARTIFACTS),
           "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1",
           "CI": "1"}
    run = subprocess.run([npx, "playwright", "test", "--project", "phone"], cwd=WEB, env=env,
                         capture_output=True, text=True, timeout=300)
    # The password never reaches the output we print.
    out = (run.stdout + run.stderr).replace(env["OVR_WEB_PASSWORD"], "***")
    assert run.returncode == 0, out[-6000:]
    assert (ARTIFACTS / "screenshots" / "phone-dashboard.png").is_file()
