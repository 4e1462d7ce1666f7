"""Protocol vocabulary and the VictoriaMetrics client's quoting and errors."""

from __future__ import annotations

import pytest
from ovr_common import protocol, vm
from peers import free_port


@pytest.mark.parametrize(("value", "ok"), [("boat-1", True), ("a_b", True), ("Boat", False), ("-x", False),
                                           ("x" * 63, True), ("x" * 64, False), ("registry", False),
                                           ("events", False), (None, False)])
def test_node_ids(value, ok):
    assert protocol.valid_node_id(value) is ok


def test_topics():
    assert protocol.node_topic("boat-1", "status") == "ovr/boat-1/status"
    assert protocol.ack_topic("boat-1") == "ovr/boat-1/cmd/ack" and protocol.cmd_topic("boat-1") == "ovr/boat-1/cmd/#"
    assert protocol.end_topic("ev-1") == "ovr/events/ev-1/end" and protocol.end_event_id("ovr/events/ev-1/end") == "ev-1"
    assert protocol.end_event_id("ovr/events/ev-1/start") is None
    assert protocol.split_node_topic("ovr/boat-1/realtime") == ("boat-1", "realtime")
    assert protocol.split_node_topic(protocol.REGISTRY_TOPIC) is None  # registry is reserved, not a node
    assert protocol.split_node_topic("ovr/boat-1/other") is None
    with pytest.raises(ValueError, match="unknown node topic kind"):
        protocol.node_topic("boat-1", "cmd")


@pytest.mark.parametrize("payload", [b'{"v": NaN}', b'{"v": Infinity}', b'{"v": -Infinity}', b'{"v": 1e999}'])
def test_loads_finite_refuses_what_is_not_a_finite_number(payload):
    with pytest.raises(ValueError):
        protocol.loads_finite(payload)


def test_loads_finite_reads_json():
    assert protocol.loads_finite(b'{"v": 1.5, "n": [1, null]}') == {"v": 1.5, "n": [1, None]}


def test_quote_and_selector():
    assert vm.quote('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'
    assert vm.selector({"node_id": "n", "empty": "", "a": 'x"}'}) == '{a="x\\"}",node_id="n"}'


def test_an_unreachable_vm_is_a_vmerror_naming_it():
    url = f"http://127.0.0.1:{free_port()}"
    client = vm.VMClient(url, timeout=2)
    with pytest.raises(vm.VMError, match=f"VictoriaMetrics at {url} is unreachable"):
        client.query("up")
    with pytest.raises(vm.VMError, match="unreachable"):
        client.post("/api/v1/import/prometheus", "x 1")
