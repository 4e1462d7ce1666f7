"""The series in a write body, for the checks and the budget, without building more than needed.

Prometheus remote write (what vmagent sends): a WriteRequest protobuf, field 1 = TimeSeries.
Each TimeSeries is kept as its raw bytes, so a request is re-encoded by concatenating the kept
ones, and is identified by the raw bytes of its labels (field 1 of TimeSeries): a series already
admitted is recognised without decoding its labels.

Influx line protocol (`/write`): one line holds one series per field; VictoriaMetrics names them
`<measurement>_<field>` with the tags as labels. A line is kept or dropped whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


class Malformed(ValueError):
    pass


# ---- protobuf ------------------------------------------------------------------------------

def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise Malformed("the protobuf body is truncated")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise Malformed("the protobuf body has a varint over 64 bits")


def _fields(buf: bytes, pos: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(field number, start, end) of every length-delimited field in buf[pos:end]; others skipped."""
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if wire == 2:
            size, pos = _varint(buf, pos, end)
            if pos + size > end:
                raise Malformed("the protobuf body is truncated")
            yield number, pos, pos + size
            pos += size
        elif wire == 0:
            _, pos = _varint(buf, pos, end)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise Malformed(f"the protobuf body has wire type {wire}")
    if pos != end:
        raise Malformed("the protobuf body is truncated")


class RemoteSeries:
    """One TimeSeries of a WriteRequest: its raw field (re-encoding = join) and its labels' bytes."""

    __slots__ = ("buf", "key", "labels_end", "labels_start", "raw")

    def __init__(self, buf: bytes, raw: bytes, labels_start: int, labels_end: int) -> None:
        self.buf, self.raw, self.labels_start, self.labels_end = buf, raw, labels_start, labels_end
        self.key = buf[labels_start:labels_end]

    def labels(self) -> list[tuple[str, str]]:
        out = []
        for number, start, end in _fields(self.buf, self.labels_start, self.labels_end):
            if number != 1:
                continue
            name = value = ""
            for inner, a, b in _fields(self.buf, start, end):
                try:
                    text = self.buf[a:b].decode("utf-8")
                except UnicodeDecodeError:
                    raise Malformed("a label is not UTF-8") from None
                if inner == 1:
                    name = text
                elif inner == 2:
                    value = text
            out.append((name, value))
        return out


_TIMESERIES = 0x0A  # field 1, length-delimited: WriteRequest.timeseries, TimeSeries.labels
_LABEL = 0x0A


def remote_write_series(body: bytes) -> list[RemoteSeries]:
    """Every TimeSeries of a WriteRequest. The hot path of the gate: labels are only delimited
    here (they come first in a TimeSeries, as every encoder writes them), decoded on demand."""
    series = []
    pos, end = 0, len(body)
    while pos < end:
        field_start = pos
        key, pos = _varint(body, pos, end)
        if key & 7 != 2:
            raise Malformed("the body is not a remote-write request (WriteRequest)")
        size = body[pos] if pos < end else 0x80
        if size < 0x80:
            pos += 1
        else:
            size, pos = _varint(body, pos, end)
        ts_end = pos + size
        if ts_end > end:
            raise Malformed("the protobuf body is truncated")
        if key == _TIMESERIES:
            p = pos
            while p < ts_end and body[p] == _LABEL:
                n = body[p + 1] if p + 1 < ts_end else 0x80
                if n < 0x80:
                    p += 2 + n
                else:
                    n, p = _varint(body, p + 1, ts_end)
                    p += n
            if p > ts_end:
                raise Malformed("the protobuf body is truncated")
            series.append(RemoteSeries(body, body[field_start:ts_end], pos, p))
        pos = ts_end  # metadata (field 3) carries no series: it is not forwarded when re-encoding
    return series


# ---- Influx line protocol ------------------------------------------------------------------

def _take(line: str, pos: int, stops: str) -> tuple[str, int]:
    """Text from pos to the first unescaped character of `stops` (backslash escapes one)."""
    out = []
    n = len(line)
    while pos < n:
        ch = line[pos]
        if ch == "\\" and pos + 1 < n:
            out.append(line[pos + 1])
            pos += 2
            continue
        if ch in stops:
            break
        out.append(ch)
        pos += 1
    return "".join(out), pos


@dataclass
class InfluxLine:
    raw: str
    measurement: str
    tags: list[tuple[str, str]]
    fields: list[str]

    def names(self) -> list[str]:
        return [f"{self.measurement}_{f}" for f in self.fields]


def parse_influx_line(line: str) -> InfluxLine:
    n = len(line)
    measurement, pos = _take(line, 0, ", ")
    if not measurement:
        raise Malformed(f"line {line[:80]!r}: no measurement")
    tags = []
    while pos < n and line[pos] == ",":
        key, pos = _take(line, pos + 1, "=, ")
        if pos >= n or line[pos] != "=" or not key:
            raise Malformed(f"line {line[:80]!r}: a tag without '='")
        value, pos = _take(line, pos + 1, ", ")
        tags.append((key, value))
    if pos >= n or line[pos] != " ":
        raise Malformed(f"line {line[:80]!r}: no fields")
    while pos < n and line[pos] == " ":
        pos += 1
    fields = []
    while True:
        key, pos = _take(line, pos, "=, ")
        if pos >= n or line[pos] != "=" or not key:
            raise Malformed(f"line {line[:80]!r}: a field without '='")
        pos += 1
        if pos < n and line[pos] == '"':  # a string field: to the closing unescaped quote
            pos += 1
            while pos < n and line[pos] != '"':
                pos += 2 if line[pos] == "\\" else 1
            if pos >= n:
                raise Malformed(f"line {line[:80]!r}: an unterminated string")
            pos += 1
        else:
            _, pos = _take(line, pos, ", ")
        fields.append(key)
        if pos < n and line[pos] == ",":
            pos += 1
            continue
        break
    return InfluxLine(raw=line, measurement=measurement, tags=tags, fields=fields)


def influx_lines(text: str) -> list[InfluxLine]:
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            out.append(parse_influx_line(stripped))
    return out
