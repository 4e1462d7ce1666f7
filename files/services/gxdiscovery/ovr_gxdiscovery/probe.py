"""One GX over MQTT: find its portal id, read its name when it republishes, send the keepalive.

Runs in its own thread (run.py starts one per GX) and drives paho's loop itself, so every wait
has its own timeout and nothing here needs a lock. Sequence:

1. connect (client id ovr-disc-<node_id>-<name>; TLS and login as the inventory says);
2. subscribe N/+/system/0/Serial (Venus retains it, even on dbus-flashmq where nothing else is
   retained) and N/+/heartbeat (published every 3 s while anyone keeps the GX alive);
3. nothing within serial_timeout but a portal id is known (inventory pin or an earlier run):
   wake the GX: keepalive to R/<portal>/keepalive plus a read of R/<portal>/system/0/Serial
   (with the suppress option, since dbus-flashmq treats that read as a keepalive too);
4. the keepalive: plain (empty payload: full republish) or suppress-republish, never retained;
   with a full republish and no system_id override, collect vebus CustomName and SystemName
   until N/<portal>/full_publish_completed or name_timeout.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .inventory import PORTAL_RE, GxConfig
from .state import Mode, Names

SUPPRESS_PAYLOAD = b'{"keepalive-options":["suppress-republish"]}'
FULL_PAYLOAD = b""
EXTRA_PORTAL_WAIT = 0.2  # after the first Serial: do others arrive (a broker carrying several GX)?
PUBLISH_TIMEOUT = 2.0

# ok: portal found, keepalive sent; unreachable: no MQTT session; refused: the broker refused the
# login; silent: connected but no portal id; error: anything else; config: our side (CA file).
Outcome = Literal["ok", "unreachable", "refused", "silent", "error", "config"]
Decide = Callable[[str], tuple[Mode, str]]


@dataclass(frozen=True)
class ProbeRequest:
    gx: GxConfig
    password: str | None
    client_id: str
    known_portal: str | None  # to wake a GX whose Serial is not retained
    want_names: bool  # False when the inventory overrides system_id
    connect_timeout: float = 3.0
    serial_timeout: float = 2.0
    name_timeout: float = 4.0


@dataclass
class ProbeResult:
    outcome: Outcome
    reason: str = ""
    portal_id: str | None = None
    mode: Mode | None = None
    mode_why: str = ""
    names: Names | None = None
    woke: bool = False
    duration: float = 0.0


class _Failed(Exception):
    def __init__(self, outcome: Outcome, reason: str) -> None:
        super().__init__(reason)
        self.outcome: Outcome = outcome
        self.reason = reason


def describe_error(exc: BaseException) -> str:
    """A short, secret-free description of a connection error."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({exc.verify_message}); set ca_file or insecure_skip_verify"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({exc.reason or exc.__class__.__name__})"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host ({exc.strerror})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError):
        return exc.strerror or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {exc}"


def _value(payload: bytes) -> Any:
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    return doc.get("value") if isinstance(doc, dict) else None


@dataclass
class _Seen:
    portals: dict[str, None] = field(default_factory=dict)  # ordered set
    vebus: dict[int, str] = field(default_factory=dict)
    system_name: str | None = None
    completed: set[str] = field(default_factory=set)


class _Session:
    def __init__(self, req: ProbeRequest) -> None:
        self.req = req
        self.seen = _Seen()
        self.connack: Any = None
        self.subacks: set[int] = set()
        self.connected = False
        c = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=req.client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        c.connect_timeout = req.connect_timeout
        gx = req.gx
        if gx.username:
            c.username_pw_set(gx.username, req.password)
        if gx.tls:
            try:
                ctx = ssl.create_default_context(cafile=gx.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise _Failed("config", f"ca_file {gx.ca_file}: {describe_error(exc)}") from None
            # Judge certificates like Telegraf (Go) does: Python 3.13's strict X.509 checks reject
            # device CAs without a keyUsage extension that Telegraf accepts.
            ctx.verify_flags &= ~ssl.VERIFY_X509_STRICT
            if gx.insecure_skip_verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            c.tls_set_context(ctx)
        c.on_connect = self._on_connect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        c.on_disconnect = self._on_disconnect
        self.client = c

    # --- paho callbacks (called from inside client.loop() in this thread) -----------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.connack = reason
        self.connected = not reason.is_failure

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        self.subacks.add(mid)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.connected = False

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        if len(parts) < 3 or parts[0] != "N" or not PORTAL_RE.match(parts[1]):
            return
        portal, rest = parts[1], "/".join(parts[2:])
        if rest == "system/0/Serial":
            if msg.payload:  # an empty retained message only clears the topic
                self.seen.portals.setdefault(portal, None)
        elif rest == "heartbeat":
            self.seen.portals.setdefault(portal, None)
        elif rest == "full_publish_completed":
            self.seen.completed.add(portal)
        elif len(parts) == 5 and parts[2] == "vebus" and parts[4] == "CustomName" and parts[3].isdigit():
            value = _value(msg.payload)
            self.seen.vebus[int(parts[3])] = value if isinstance(value, str) else ""
        elif rest == "settings/0/Settings/SystemSetup/SystemName":
            value = _value(msg.payload)
            self.seen.system_name = value if isinstance(value, str) else None

    # --- helpers ------------------------------------------------------------------------
    def pump(self, done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            rc = self.client.loop(timeout=min(0.05, remaining))
            if rc != mqtt.MQTT_ERR_SUCCESS:
                if self.connack is not None and self.connack.is_failure:
                    return done()
                raise _Failed("unreachable", f"connection lost ({mqtt.error_string(rc)})")
        return True

    def subscribe(self, topics: list[str], timeout: float) -> None:
        result, mid = self.client.subscribe([(t, 0) for t in topics])
        if result != mqtt.MQTT_ERR_SUCCESS or mid is None:
            raise _Failed("unreachable", f"subscribe failed ({mqtt.error_string(result)})")
        if not self.pump(lambda: mid in self.subacks, timeout):
            raise _Failed("silent", f"no SUBACK within {timeout:g}s")

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=0, retain=False)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise _Failed("unreachable", f"publish failed ({mqtt.error_string(info.rc)})")
        if not self.pump(info.is_published, PUBLISH_TIMEOUT):
            raise _Failed("unreachable", f"publish to {topic} not sent within {PUBLISH_TIMEOUT:g}s")

    def keepalive(self, portal: str, mode: Mode) -> None:
        self.publish(f"R/{portal}/keepalive", FULL_PAYLOAD if mode == "full" else SUPPRESS_PAYLOAD)

    def name_topics(self, portal: str) -> list[str]:
        return [
            f"N/{portal}/vebus/+/CustomName",
            f"N/{portal}/settings/0/Settings/SystemSetup/SystemName",
            f"N/{portal}/full_publish_completed",
        ]

    # --- the probe ----------------------------------------------------------------------
    def run(self, decide: Decide) -> ProbeResult:
        req, gx = self.req, self.req.gx
        try:
            self.client.connect(gx.host, gx.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise _Failed("unreachable", f"connect: {describe_error(exc)}") from None
        if not self.pump(lambda: self.connack is not None, req.connect_timeout):
            raise _Failed("unreachable", f"no CONNACK within {req.connect_timeout:g}s")
        if self.connack.is_failure:
            raise _Failed("refused", f"broker refused the login: {self.connack}")

        pin = gx.portal_id
        self.subscribe([f"N/{pin or '+'}/system/0/Serial", f"N/{pin or '+'}/heartbeat"], req.serial_timeout)
        self.pump(lambda: bool(self.seen.portals), req.serial_timeout)
        result = ProbeResult(outcome="ok")
        sent: tuple[str, Mode] | None = None
        if not self.seen.portals and req.known_portal:
            portal = req.known_portal
            mode, result.mode_why = decide(portal)
            if mode == "full" and req.want_names:
                self.subscribe(self.name_topics(portal), req.serial_timeout)
            self.keepalive(portal, mode)
            self.publish(f"R/{portal}/system/0/Serial", SUPPRESS_PAYLOAD)
            sent, result.woke = (portal, mode), True
            self.pump(lambda: bool(self.seen.portals), req.serial_timeout)
        if not self.seen.portals:
            raise _Failed(
                "silent",
                f"connected, but no N/{pin or '+'}/system/0/Serial or heartbeat"
                + (f" (woke portal {req.known_portal} without answer)" if sent else "")
                + (": is portal_id in the inventory right?" if pin else ": is MQTT enabled on the GX (Settings > Services)?"),
            )
        if not pin:
            self.pump(lambda: False, EXTRA_PORTAL_WAIT)
        portals = list(self.seen.portals)
        if len(portals) > 1:
            chosen = req.known_portal if req.known_portal in portals else None
            if chosen is None:
                raise _Failed("error", f"broker carries several portal ids ({', '.join(portals)}): set portal_id in the inventory")
            portals = [chosen]
        portal = portals[0]
        result.portal_id = portal

        if sent is not None and sent[0] == portal:
            mode = sent[1]
        else:
            mode, result.mode_why = decide(portal)
            if mode == "full" and req.want_names:
                self.subscribe(self.name_topics(portal), req.serial_timeout)
            self.keepalive(portal, mode)
        result.mode = mode
        if mode == "full" and req.want_names:
            self.pump(lambda: portal in self.seen.completed, req.name_timeout)
            result.names = Names(
                vebus=dict(self.seen.vebus),
                system_name=self.seen.system_name,
                complete=portal in self.seen.completed,
            )
        return result

    def close(self) -> None:
        try:
            if self.connected:
                self.client.disconnect()
                self.pump(lambda: not self.connected, 0.5)
        except Exception:  # best effort; the socket goes away with the thread
            pass
        finally:
            sock = self.client.socket()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()


def probe(req: ProbeRequest, decide: Decide) -> ProbeResult:
    """Probe one GX; never raises (errors become an outcome with a reason)."""
    start = time.monotonic()
    session: _Session | None = None
    try:
        session = _Session(req)
        result = session.run(decide)
    except _Failed as exc:
        result = ProbeResult(outcome=exc.outcome, reason=exc.reason)
    except (OSError, ssl.SSLError) as exc:
        result = ProbeResult(outcome="unreachable", reason=describe_error(exc))
    except Exception as exc:  # one GX must never take the run down
        result = ProbeResult(outcome="error", reason=f"{exc.__class__.__name__}: {exc}")
    finally:
        if session is not None:
            session.close()
    result.duration = time.monotonic() - start
    return result
