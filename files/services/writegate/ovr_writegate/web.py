"""The WSGI app (gunicorn, ONE worker: the budget is this process's memory) on loopback.

Routes: POST /api/v1/write (remote write), POST /write (Influx), GET /health, GET /metrics.
Caddy is the only client: it has authenticated the node and put extra_label=node_id=<node> in the
query, which is forwarded unchanged with the kept series. Answers:
  204 (VictoriaMetrics')  what could be kept is stored; X-Ovr-Refused counts what was not
                          (a node over its budget gets 204 too: its vmagent must not retry forever)
  400                     nothing stored: no series in the request is one the fleet takes (the
                          message says why, with the variable to change), or the body is broken
  413                     the body, compressed or not, is over the limit
"""

from __future__ import annotations

import http.client
import json
import logging
import time
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

from . import codecs
from .config import Limits, load
from .gate import Gate, Verdict
from .series import Malformed, influx_lines, remote_write_series

log = logging.getLogger("ovr_writegate")
_FORWARD_HEADERS = ("Content-Type", "User-Agent", "X-Prometheus-Remote-Write-Version",
                    "X-Victoriametrics-Remote-Write-Version")
_CHUNK = 1 << 16


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _size(n: int) -> str:
    return f"{n} bytes ({n / 2**20:g}MiB)"


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The request body, or 413 once it is over `limit` (the rest is read and discarded, so the
    answer reaches the client through Caddy instead of a reset connection)."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH") or ""
    declared = int(length) if length.isdigit() else None
    chunks, total = [], 0
    while True:
        want = _CHUNK if declared is None else min(_CHUNK, declared - total)
        if want <= 0:
            break
        chunk = stream.read(want)
        if not chunk:
            break
        total += len(chunk)
        if total <= limit:
            chunks.append(chunk)
    if total > limit:
        raise HttpError(413, f"the request body is {_size(total)}, over the cloud's limit of {_size(limit)} "
                             "(cloud_write_max_body); send smaller batches (vmagent -remoteWrite.maxBlockSize)")
    return b"".join(chunks)


class App:
    def __init__(self, limits: Limits, clock: Callable[[], float] = time.time,
                 forward: Callable[..., tuple[int, list[tuple[str, str]], bytes]] | None = None) -> None:
        self.limits = limits
        self.gate = Gate(limits, clock)
        self.forward = forward or self._forward
        self._last_log: dict[tuple[str, str], float] = {}

    # ---- upstream ------------------------------------------------------------------------
    def _forward(self, path: str, query: str, headers: dict[str, str], body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        host = self.limits.upstream.removeprefix("http://")
        conn = http.client.HTTPConnection(host, timeout=30)
        try:
            conn.request("POST", f"{path}?{query}" if query else path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            keep = [(k, v) for k, v in resp.getheaders() if k.lower() in ("content-type",)]
            return resp.status, keep, data
        finally:
            conn.close()

    # ---- logging, rate-limited per node and reason ----------------------------------------
    def _log(self, node: str, verdict: Verdict) -> None:
        now = time.monotonic()
        for reason in verdict.refused:
            if now - self._last_log.get((node, reason), -1e9) >= 60:
                self._last_log[(node, reason)] = now
                log.warning("node %s: %d series refused (%s): %s", node, verdict.refused[reason], reason,
                            verdict.examples[reason])

    # ---- the write -----------------------------------------------------------------------
    def write(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        path = environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        labels = [v for v in urllib.parse.parse_qs(query).get("extra_label", []) if v.startswith("node_id=")]
        node = labels[-1].removeprefix("node_id=") if labels else ""
        if not node:
            raise HttpError(400, "no extra_label=node_id=<node> in the query: only Caddy writes through the gate")
        body = read_body(environ, self.limits.max_body_bytes)
        encoding = environ.get("HTTP_CONTENT_ENCODING", "")
        if path == "/api/v1/write" and not encoding:
            encoding = "snappy"  # Prometheus remote write is always snappy
        try:
            raw = codecs.decompress(body, encoding, self.limits.max_decoded_bytes)
        except codecs.TooLarge as exc:
            raise HttpError(413, f"{exc}, over the cloud's limit of {_size(self.limits.max_decoded_bytes)} "
                                 "(cloud_write_max_decoded_body)") from None
        except codecs.BadEncoding as exc:
            raise HttpError(400, str(exc)) from None
        headers = {h: environ[k] for h in _FORWARD_HEADERS if (k := "HTTP_" + h.upper().replace("-", "_")) in environ}
        if "CONTENT_TYPE" in environ:
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        try:
            if path == "/api/v1/write":
                series = remote_write_series(raw)
                kept, verdict = self.gate.remote_write(node, series)
                out = body if len(kept) == len(series) else codecs.compress(b"".join(s.raw for s in kept), encoding)
                if encoding:
                    headers["Content-Encoding"] = encoding
            else:
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise Malformed("the body is not UTF-8 text") from None
                lines = influx_lines(text)
                kept_lines, verdict = self.gate.influx(node, lines)
                out = ("\n".join(line.raw for line in kept_lines) + "\n").encode() if kept_lines else b""
                series = lines
                kept = kept_lines
        except Malformed as exc:
            raise HttpError(400, str(exc)) from None
        self._log(node, verdict)
        extra = [("X-Ovr-Refused", verdict.header())] if verdict.refused else []
        if series and not kept and verdict.invalid:
            raise HttpError(400, f"nothing stored: {verdict.summary()}")
        if not kept and series:
            return 204, extra, b""  # all over the budget: dropped, not retried
        status, resp_headers, data = self.forward(path, query, headers, out)
        return status, resp_headers + extra, data

    # ---- WSGI ----------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "")
        try:
            if path == "/health" and method == "GET":
                status, headers, data = 200, [("Content-Type", "text/plain")], b"ok\n"
            elif path == "/metrics" and method == "GET":
                status, headers, data = 200, [("Content-Type", "text/plain; version=0.0.4")], self.gate.metrics().encode()
            elif path in ("/api/v1/write", "/write"):
                if method != "POST":
                    raise HttpError(405, "writes are POST")
                status, headers, data = self.write(environ)
            else:
                raise HttpError(404, "not found")
        except HttpError as exc:
            status, headers = exc.status, [("Content-Type", "application/json")]
            data = json.dumps({"status": "error", "error": exc.message}).encode()
        except Exception:  # never a stack trace to a client
            log.exception("unexpected error on %s", path)
            status, headers = 500, [("Content-Type", "application/json")]
            data = b'{"status": "error", "error": "internal error of the write gate (see its journal)"}'
        reason = http.client.responses.get(status, "")
        start_response(f"{status} {reason}", [*headers, ("Content-Length", str(len(data)))])
        return [data]


def create_app(path: str = "/etc/ovr/writegate.json") -> App:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    return App(load(path))
