"""ovr-writegate (issue 10 item 9): what one node may write into the fleet TSDB.

The WSGI app is called directly; what it would forward to VictoriaMetrics is captured (the real
VictoriaMetrics behind it is tests/molecule/cloud's)."""

from __future__ import annotations

import io
import json
import struct

import cramjam
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ovr_writegate import codecs
from ovr_writegate.budget import SeriesBudget
from ovr_writegate.config import ConfigError, parse
from ovr_writegate.series import Malformed, parse_influx_line, remote_write_series
from ovr_writegate.web import App

LIMITS = {"upstream": "http://127.0.0.1:8428", "metric_names": ["victron_.+", "ovr_.+", "cpu_usage_(user|idle)"],
          "max_labels": 4, "max_label_name_len": 16, "max_label_value_len": 32, "max_body_bytes": 4096,
          "max_decoded_bytes": 8192, "series_per_node": 5, "window_seconds": 3600}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def series(labels: dict[str, str], value: float = 1.0) -> bytes:
    body = b"".join(_field(1, _field(1, k.encode()) + _field(2, v.encode())) for k, v in labels.items())
    return _field(1, body + _field(2, b"\x09" + struct.pack("<d", value) + b"\x10" + _varint(1000)))


def snappy(*parts: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(b"".join(parts)))


class Upstream:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, str], bytes]] = []

    def __call__(self, path, query, headers, body):
        self.calls.append((path, query, headers, body))
        return 204, [], b""


@pytest.fixture
def world():
    now = [1_000_000.0]
    up = Upstream()
    app = App(parse(LIMITS), clock=lambda: now[0], forward=up)
    return app, up, now


def call(app, path: str, body: bytes, node: str | None = "edge-a", encoding: str | None = None):
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "wsgi.input": io.BytesIO(body),
               "CONTENT_LENGTH": str(len(body)),
               "QUERY_STRING": f"extra_label=node_id={node}&precision=" if node else ""}
    if encoding:
        environ["HTTP_CONTENT_ENCODING"] = encoding
    got = {}

    def start_response(status, headers):
        got["status"], got["headers"] = int(status.split()[0]), dict(headers)
    data = b"".join(app(environ, start_response))
    return got["status"], got["headers"], data


def rw(app, *parts: bytes, node: str = "edge-a"):
    return call(app, "/api/v1/write", snappy(*parts), node=node, encoding="snappy")


def forwarded_names(up: Upstream) -> list[str]:
    body = bytes(cramjam.snappy.decompress_raw(up.calls[-1][3]))
    return [dict(s.labels())["__name__"] for s in remote_write_series(body)]


def test_accepted_request_is_forwarded_untouched(world):
    app, up, _ = world
    body = snappy(series({"__name__": "victron_battery_soc", "system_id": "s1"}))
    assert call(app, "/api/v1/write", body, encoding="snappy")[0] == 204
    path, query, headers, sent = up.calls[-1]
    assert (path, sent, headers["Content-Encoding"]) == ("/api/v1/write", body, "snappy")
    assert "extra_label=node_id=edge-a" in query


def test_names_the_edges_do_not_send_are_refused_and_the_rest_kept(world):
    app, up, _ = world
    status, headers, data = rw(app, series({"__name__": "evil_x"}))
    assert status == 400 and b"evil_x" in data and b"cloud_write_metric_names" in data
    assert up.calls == []
    status, headers, _ = rw(app, series({"__name__": "evil_x"}), series({"__name__": "ovr_ok"}),
                            series({"__name__": "cpu_usage_user"}), series({"__name__": "cpu_usage_user_x"}))
    assert status == 204 and headers["X-Ovr-Refused"] == "metric_name=2"
    assert forwarded_names(up) == ["ovr_ok", "cpu_usage_user"]


def test_label_limits(world):
    app, up, _ = world
    status, _, data = rw(app, series({"__name__": "ovr_x"} | {f"l{i}": "v" for i in range(5)}))
    assert status == 400 and b"5 labels, more than 4" in data
    status, _, data = rw(app, series({"__name__": "ovr_x", "system_id": "v" * 33}))
    assert status == 400 and b"'system_id'" in data and b"more than 32" in data
    status, _, data = rw(app, series({"__name__": "ovr_x", "n" * 17: "v"}))
    assert status == 400 and b"more than 16" in data
    assert rw(app, series({"__name__": "ovr_x"} | {f"l{i}": "v" * 32 for i in range(4)}))[0] == 204
    assert len(up.calls) == 1


def test_series_budget_per_node(world):
    app, up, now = world
    known = [series({"__name__": "ovr_n", "k": str(i)}) for i in range(3)]
    assert rw(app, *known)[0] == 204
    flood = [series({"__name__": "ovr_flood", "k": str(i)}) for i in range(100)]
    status, headers, _ = rw(app, *flood)
    assert status == 204 and headers["X-Ovr-Refused"] == "series_budget=98"
    assert len(forwarded_names(up)) == 2  # 3 known + 2 new = the budget of 5
    # All over the budget: nothing forwarded, still 204 (a vmagent must not retry it forever).
    calls = len(up.calls)
    assert rw(app, *flood[50:])[0] == 204 and len(up.calls) == calls
    # The known series keep arriving; another node has its own budget.
    assert rw(app, *known)[0] == 204 and len(forwarded_names(up)) == 3
    assert rw(app, *flood[:5], node="edge-b")[0] == 204 and len(forwarded_names(up)) == 5
    metrics = app.gate.metrics()
    assert 'ovr_writegate_series_refused_total{node_id="edge-a",reason="series_budget"} 148' in metrics
    assert 'ovr_writegate_series_held{node_id="edge-b"} 5' in metrics
    # A series not written for a whole window stops counting.
    now[0] += 1801
    assert rw(app, *known)[0] == 204
    now[0] += 1801
    status, headers, _ = rw(app, *flood[10:12])
    assert status == 204 and "X-Ovr-Refused" not in headers


def test_budget_generations():
    b = SeriesBudget(limit=2, window_seconds=100)
    assert b.admit("n", 1, 0) and b.admit("n", 2, 0) and not b.admit("n", 3, 0)
    assert b.known("n", 1, 60)  # rotated: 1 moves to the current generation, 2 stays previous
    assert not b.admit("n", 3, 61)
    assert not b.known("n", 2, 111) and b.admit("n", 3, 111)  # 2 was not written for a window
    assert b.held() == {"n": 2}


def test_influx_lines(world):
    app, up, _ = world
    status, _, data = call(app, "/write", b"evil,system_id=s1 value=1\n")
    assert status == 400 and b"'evil_value'" in data
    body = b'ovr_a,system_id=s\\ 1 value=1,text="a \\"b\\", c" 1000\n# comment\nevil value=2\novr_b v=3i\n'
    status, headers, _ = call(app, "/write", body)
    assert status == 204 and headers["X-Ovr-Refused"] == "metric_name=1"
    assert up.calls[-1][3] == b'ovr_a,system_id=s\\ 1 value=1,text="a \\"b\\", c" 1000\novr_b v=3i\n'
    line = parse_influx_line('m\\,x,t\\=1=a\\ b f=1,g="x,y" 5')
    assert (line.measurement, line.tags, line.fields) == ("m,x", [("t=1", "a b")], ["f", "g"])
    status, _, data = call(app, "/write", b"ovr_c,system_id=" + b"y" * 40 + b" value=1")
    assert status == 400 and b"system_id" in data


def test_body_limits_answer_413(world):
    app, up, _ = world
    status, _, data = call(app, "/api/v1/write", b"\0" * 5000, encoding="snappy")
    assert status == 413 and b"4096 bytes" in data and b"cloud_write_max_body" in data
    bomb = snappy(b"\0" * 9000)  # small compressed, over max_decoded_bytes decompressed
    status, _, data = call(app, "/api/v1/write", bomb, encoding="snappy")
    assert status == 413 and b"cloud_write_max_decoded_body" in data
    gz = bytes(cramjam.gzip.compress(b"ovr_x value=1\n" * 1000))
    assert call(app, "/write", gz, encoding="gzip")[0] == 413
    assert up.calls == []


def test_zstd_is_forwarded_as_zstd(world):
    app, up, _ = world
    body = codecs.zstd_compress(series({"__name__": "evil"}) + series({"__name__": "ovr_z"}))
    status, _, _ = call(app, "/api/v1/write", body, encoding="zstd")
    assert status == 204
    _, _, headers, sent = up.calls[-1]
    assert headers["Content-Encoding"] == "zstd"
    assert [dict(s.labels())["__name__"] for s in remote_write_series(bytes(cramjam.zstd.decompress(sent)))] == ["ovr_z"]


def test_only_caddy_requests_carry_a_node(world):
    app, up, _ = world
    status, _, data = call(app, "/api/v1/write", snappy(series({"__name__": "ovr_x"})), node=None, encoding="snappy")
    assert status == 400 and b"extra_label" in data
    assert up.calls == []


@given(st.binary(max_size=300))
def test_any_bytes_are_a_clear_answer_never_a_500(data):
    app = App(parse(LIMITS), forward=Upstream())
    for path, enc in (("/api/v1/write", "snappy"), ("/api/v1/write", ""), ("/write", ""), ("/api/v1/write", "zstd")):
        status, _, body = call(app, path, data, encoding=enc)
        assert status in (204, 400, 413), (path, enc, status, body)
        if status == 400:
            assert json.loads(body)["error"]
    status, _, _ = call(app, "/api/v1/write", snappy(data), encoding="snappy")
    assert status in (204, 400)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="max_labels"):
        parse(LIMITS | {"max_labels": 0})
    with pytest.raises(ConfigError, match="metric_names entry"):
        parse(LIMITS | {"metric_names": ["("]})
    with pytest.raises(ConfigError, match="missing series_per_node"):
        parse({k: v for k, v in LIMITS.items() if k != "series_per_node"})


def test_malformed_protobuf():
    with pytest.raises(Malformed):
        remote_write_series(b"\x0a\x10short")
