"""Hostile GX payloads (issue 10, item 2): no single message stops a GX's live cache.

Property-based: any topic and any bytes up to the 64 KiB cap are either used or dropped and
counted; the summary the API serves stays strict JSON (no NaN, no Infinity)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from ovr_events.realtime import GxCache

SMALL_DEEP = b'{"value":' + b"[" * 30_000 + b"]" * 30_000 + b"}"  # 60 KiB, nested 30,000 deep


def strict(doc: object) -> None:
    """json.dumps that refuses NaN/Infinity, parsed back by a parser that refuses them too."""
    text = json.dumps(doc, allow_nan=False)
    json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


def fresh() -> GxCache:
    c = GxCache("pro-1", "p1", clock=lambda: 1000.0)
    c.set_connected(True)
    c.handle("vebus/276/Mode", b'{"value":3}')
    c.handle("system/0/Dc/Battery/Soc", b'{"value":80}')
    return c


def test_deeply_nested_payload_is_dropped_and_counted():
    assert len(SMALL_DEEP) < 65536
    c = fresh()
    c.handle("system/0/Dc/Battery/Soc", SMALL_DEEP)
    assert c.malformed == 1 and c.get("system/0/Dc/Battery/Soc") == 80
    c.handle("system/0/Dc/Battery/Soc", b'{"value":81}')
    assert c.get("system/0/Dc/Battery/Soc") == 81


def test_nan_and_infinity_are_refused():
    c = fresh()
    for bad in (b'{"value":NaN}', b'{"value":Infinity}', b'{"value":-Infinity}', b'{"value":1e999}',
                b'{"value":[1e999]}'):
        c.handle("system/0/Dc/Battery/Soc", bad)
    assert c.malformed == 5 and c.get("system/0/Dc/Battery/Soc") == 80
    strict(c.summary(60))


topics = st.one_of(
    st.sampled_from(["system/0/Dc/Battery/Soc", "vebus/276/Mode", "vebus/276/Ac/ActiveIn/CurrentLimit",
                     "vebus/276/Ac/Out/L1/P", "gps/0/Position/Latitude", "gps/0/Position/Longitude",
                     "battery/512/Alarms/LowVoltage", "vebus/276/ModeIsAdjustable", "heartbeat"]),
    st.text(max_size=40),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
payloads = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps({"value": v}).encode()),  # NaN/Infinity included
    json_values.map(lambda v: json.dumps(v).encode()),
    st.integers(1, 40_000).map(lambda n: b'{"value":' + b"[" * n + b"]" * n + b"}"),
    st.sampled_from([b"", b" ", b'{"value":NaN}', b'{"value":1e999}', b"\xff\xfe", SMALL_DEEP]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(topics, payloads), min_size=1, max_size=12))
def test_any_message_is_used_or_dropped_and_the_summary_stays_strict_json(messages):
    c = fresh()
    for topic, payload in messages:
        c.handle(topic, payload)  # never raises
    strict(c.summary(60))
    strict(c.controls())
    # The cache still takes good data after whatever came before.
    c.handle("system/0/Dc/Battery/Soc", b'{"value":55}')
    assert c.summary(60)["soc"] == 55
