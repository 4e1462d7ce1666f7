"""The edge's internal broker (issue 10 item 13, docs/adr/0013-edge-broker-local-users.md):
no anonymous client, each local user held to its ACL, the daemon sandboxed.

Runs after test_edge.py and test_events.py (file order): the test with the events worker's own
credential closes the worker's session once (the user name is the client id), and checks that
the worker comes back.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest
from conftest import wait_for

EDGE = "edge-1"
EVENTS_PASSWORD_FILE = "/etc/ovr/secrets/mqtt-events.password"


@pytest.fixture(scope="module")
def edge(hosts):
    return hosts(EDGE)


def secret(name: str) -> str:
    return (Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / name).read_text().strip()


def pub(edge, auth: str, topic: str, message: str):
    """mosquitto_pub on the edge, MQTT 5, so a refused publish is reported to the publisher."""
    return edge.run(f"mosquitto_pub -h 127.0.0.1 -V 5 {auth} -q 1 -t {shlex.quote(topic)} -m {shlex.quote(message)}")


PROBE = "-u molecule-probe -P {}"
EVENTS = f"-u ovr-events -P \"$(cat {EVENTS_PASSWORD_FILE})\""


def test_an_anonymous_local_client_is_refused(edge):
    """Before: any local process published a fake ack (the report was then never resent) or,
    through the bridge, wrote to the cloud as the node."""
    for topic in (f"ovr/{EDGE}/cmd/ack", f"ovr/{EDGE}/status"):
        out = pub(edge, "", topic, json.dumps({"report_id": "forged"}))
        assert out.rc != 0 and "not authori" in out.stderr.lower(), (topic, out.stdout, out.stderr)


def test_a_wrong_password_is_refused(edge):
    out = pub(edge, "-u ovr-events -P wrong-password-123456", f"ovr/{EDGE}/status", "x")
    assert out.rc != 0 and "not authori" in out.stderr.lower(), out.stderr


def test_the_events_password_is_readable_by_the_service_group_only(edge):
    f = edge.file(EVENTS_PASSWORD_FILE)
    assert (f.user, f.group, f.mode) == ("root", "ovr", 0o640)
    assert len(f.content_string.strip()) >= 32
    passwd = edge.file("/etc/mosquitto/ovr/users.passwd")
    assert (passwd.user, passwd.mode) == ("mosquitto", 0o600)
    assert f.content_string.strip() not in passwd.content_string  # hashed


def test_a_read_only_user_cannot_publish(edge):
    out = pub(edge, PROBE.format(shlex.quote(secret("mqtt-probe"))), f"ovr/{EDGE}/cmd/ack", '{"report_id": "forged"}')
    assert "not authorized" in (out.stdout + out.stderr).lower(), (out.stdout, out.stderr)


def test_the_events_credential_cannot_publish_outside_its_acl(edge):
    """The worker's user writes its node's own topics and nothing else: not a command to itself,
    not another node's topic, not the registry. Connecting with it closes the worker's session
    (one client id per user); the worker reconnects by itself."""
    connected = len(re.findall("local broker connected", edge.check_output("journalctl -u ovr-events-worker -o cat")))
    for topic in (f"ovr/{EDGE}/cmd/ack", "ovr/other-node/status", "ovr/registry/events", f"ovr/{EDGE}/junk"):
        out = pub(edge, EVENTS, topic, "forged")
        assert "not authorized" in (out.stdout + out.stderr).lower(), (topic, out.stdout, out.stderr)
    assert pub(edge, EVENTS, f"ovr/{EDGE}/events", "{}").rc == 0  # its own topic: allowed
    wait_for(lambda: len(re.findall("local broker connected",
                                    edge.check_output("journalctl -u ovr-events-worker -o cat"))) > connected,
             timeout=60, what="the events worker to reconnect to the local broker")
    out = edge.check_output(f"mosquitto_sub -h 127.0.0.1 {PROBE.format(shlex.quote(secret('mqtt-probe')))} "
                            f"-t ovr/{EDGE}/status -C 1 -W 5")
    assert json.loads(out)["state"] == "online"


def test_mosquitto_runs_in_its_sandbox(edge):
    props = edge.service("mosquitto.service").systemd_properties
    assert "/etc/systemd/system/mosquitto.service.d/ovr.conf" in props["DropInPaths"].split()
    assert props["User"] == "mosquitto" and props["LogsDirectory"] == "mosquitto"
    # Debian's mosquitto.conf logs to a file: it still does, as the mosquitto user.
    log = edge.file("/var/log/mosquitto/mosquitto.log")
    assert log.exists and log.user == "mosquitto"
    out = edge.check_output("systemd-analyze security --no-pager mosquitto.service")
    score = re.search(r"Overall exposure level for mosquitto\.service: ([\d.]+)", out)
    assert score and float(score.group(1)) <= 3.0, out
