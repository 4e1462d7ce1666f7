"""GX brokers: one paho client per GX from /etc/ovr/gx_systems.json (credentials and TLS from
gx_inventory.json + password files, read by ovr_gxdiscovery.inventory), feeding a GxCache
each, and the W/ writes of GX control.

Runs in the worker only. On connect it asks for one full republish (plain keepalive) so values
that never change (Mode, *IsAdjustable, limits) are known at once, then keeps the GX alive with
suppress-republish keepalives of its own, so the live cache does not depend on discovery's timer.
A value the API needs that goes blank or invalid later is read back with `R/` (reread.py).
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from ovr_gxdiscovery.inventory import GxConfig, load_inventory, read_password
from paho.mqtt.enums import CallbackAPIVersion

from .realtime import SUBSCRIPTIONS, GxCache
from .reread import RereadSchedule

log = logging.getLogger("ovr_events.gx")

KEEPALIVE_SECONDS = 30.0
SILENT_SECONDS = 10.0
SUPPRESS = b'{"keepalive-options":["suppress-republish"]}'


@dataclass(frozen=True)
class GxTarget:
    """A GX of gx_systems.json (online or lost) with its connection settings from
    gx_inventory.json (read by ovr_gxdiscovery, which validates it); host and port as discovered."""

    system_id: str
    portal_id: str
    gx: GxConfig

    @property
    def name(self) -> str:
        return self.gx.name


def load_targets(systems_file: Path, inventory_file: Path) -> list[GxTarget]:
    """Online/lost GX of gx_systems.json, with the inventory's connection settings by name.
    A missing file is an empty list; a broken inventory is an InventoryError (a ValueError)."""
    try:
        systems = json.loads(systems_file.read_text(encoding="utf-8")).get("systems", [])
    except FileNotFoundError:
        return []
    inventory = {gx.name: gx for gx in load_inventory(inventory_file)} if inventory_file.exists() else {}
    out = []
    for s in systems:
        if s.get("status", "online") not in ("online", "lost") or not s.get("portal_id") or not s.get("system_id"):
            continue
        inv = inventory.get(s.get("name"))
        host = s.get("host") or (inv.host if inv else None)
        port = int(s.get("port") or (inv.port if inv else 1883))
        gx = replace(inv, host=host, port=port) if inv else GxConfig(name=s.get("name") or s["system_id"], host=host, port=port)
        out.append(GxTarget(system_id=s["system_id"], portal_id=s["portal_id"], gx=gx))
    return out


class GxConnection:
    def __init__(self, target: GxTarget, node_id: str, on_change=None) -> None:
        self.target = target
        self.cache = GxCache(target.system_id, target.portal_id)
        self.lock = threading.Lock()
        self.on_change = on_change
        self._last_keepalive = 0.0
        self._last_full = 0.0
        self.rereads = RereadSchedule()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"ovr-events-{node_id}-{target.name}",
                             clean_session=True)
        client.enable_logger(logging.getLogger("ovr_events.gx.paho"))
        if target.gx.username:
            client.username_pw_set(target.gx.username, read_password(target.gx))
        if target.gx.tls:
            ctx = ssl.create_default_context(cafile=target.gx.ca_file)
            if target.gx.insecure_skip_verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            client.tls_set_context(ctx)
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.client = client

    def start(self) -> None:
        self.client.connect_async(self.target.gx.host, self.target.gx.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("gx %s (%s:%s): connect refused: %s", self.target.name, self.target.gx.host, self.target.gx.port, reason_code)
            return
        log.info("gx %s (%s:%s): connected, portal %s", self.target.name, self.target.gx.host, self.target.gx.port,
                 self.target.portal_id)
        with self.lock:
            self.cache.set_connected(True)
        p = self.target.portal_id
        client.subscribe([(f"N/{p}/{s}", 0) for s in SUBSCRIPTIONS] + [(f"N/{p}/heartbeat", 0)])
        # One full republish so the values that never change arrive now.
        client.publish(f"R/{p}/keepalive", b"", qos=0)
        self._last_keepalive = self._last_full = time.monotonic()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self.lock:
            self.cache.set_connected(False)
        log.info("gx %s: disconnected (%s)", self.target.name, reason_code)

    def _on_message(self, client, userdata, msg) -> None:
        prefix = f"N/{self.target.portal_id}/"
        if not msg.topic.startswith(prefix):
            return
        rest = msg.topic[len(prefix):]
        try:
            with self.lock:
                self.cache.handle(rest, msg.payload)
            if self.on_change is not None:
                self.on_change(self, rest)
        except Exception:  # paho's network thread dies with an uncaught error: never for one message
            with self.lock:
                self.cache.malformed += 1
            log.exception("gx %s: message on %s dropped", self.target.name, msg.topic[:200])

    def tick(self) -> None:
        """Called every snapshot period: keep the GX publishing, read back what went unknown."""
        self.keepalive()
        self.reread()

    def reread(self) -> None:
        """`R/` for each API value that is unknown now, at the pace RereadSchedule allows."""
        if not self.client.is_connected():
            return
        with self.lock:
            unknown = self.cache.unknown()
        for key in self.rereads.due(unknown, time.monotonic()):
            self.client.publish(f"R/{self.target.portal_id}/{key}", b"", qos=0)
            log.debug("gx %s: %s unknown, reading it back", self.target.name, key)

    def keepalive(self) -> None:
        """Called every snapshot period. A suppress-republish keepalive every 30 s keeps the GX
        alive; a plain one (full republish) when the cache lacks what never changes (no vebus
        yet: we connected before the GX did, or the GX restarted and forgot us) or the GX has been
        silent for 10 s, at most every 10 s."""
        if not self.client.is_connected():
            return
        now = time.monotonic()
        with self.lock:
            empty = self.cache.vebus_instance() is None
            last = self.cache.last_message
        silent = last is None or time.time() - last > SILENT_SECONDS
        if (empty or silent) and now - self._last_full >= SILENT_SECONDS:
            self.client.publish(f"R/{self.target.portal_id}/keepalive", b"", qos=0)
            self._last_keepalive = self._last_full = now
        elif now - self._last_keepalive >= KEEPALIVE_SECONDS:
            self.client.publish(f"R/{self.target.portal_id}/keepalive", SUPPRESS, qos=0)
            self._last_keepalive = now

    def prepare(self, path: str) -> tuple[str, Any]:
        """The N/ key of a vebus path on this GX (instance discovered from its topics) and its value
        now, or the last one known if it was lost since (and is being read back)."""
        with self.lock:
            instance = self.cache.vebus_instance()
            if instance is None:
                raise RuntimeError("the GX has not published a vebus device yet")
            key = f"vebus/{instance}/{path}"
            return key, self.cache.last_known(key)

    def send(self, key: str, value: float, integer: bool) -> None:
        """Publish W/<portal>/<key>, then read it back with R/ so the GX echoes it on N/ even when
        the value did not change (a GX publishes only changes)."""
        if not self.client.is_connected():
            raise RuntimeError("not connected to the GX broker")
        payload = json.dumps({"value": int(value) if integer else value}).encode()
        info = self.client.publish(f"W/{self.target.portal_id}/{key}", payload, qos=0)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"publish failed ({mqtt.error_string(info.rc)})")
        self.client.publish(f"R/{self.target.portal_id}/{key}", b"", qos=0)

    def summary(self, stale_seconds: float) -> dict[str, Any]:
        with self.lock:
            s = self.cache.summary(stale_seconds)
        s["name"] = self.target.name
        return s


class GxManager:
    """The set of GX connections, kept equal to gx_systems.json."""

    def __init__(self, systems_file: Path, inventory_file: Path, node_id: str, on_change=None) -> None:
        self.systems_file = systems_file
        self.inventory_file = inventory_file
        self.node_id = node_id
        self.on_change = on_change
        self.connections: dict[str, GxConnection] = {}
        self._stamp: tuple[float, float] | None = None
        self.lock = threading.Lock()

    def _mtimes(self) -> tuple[float, float]:
        def mt(p: Path) -> float:
            try:
                return p.stat().st_mtime
            except FileNotFoundError:
                return 0.0
        return mt(self.systems_file), mt(self.inventory_file)

    def refresh(self, force: bool = False) -> None:
        stamp = self._mtimes()
        if not force and stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            targets = {t.system_id: t for t in load_targets(self.systems_file, self.inventory_file)}
        except (OSError, ValueError) as exc:
            log.error("cannot read the GX list (%s); keeping the current connections", exc)
            return
        with self.lock:
            for sid in list(self.connections):
                conn = self.connections[sid]
                if sid not in targets or targets[sid] != conn.target:
                    log.info("gx %s: %s", conn.target.name, "removed" if sid not in targets else "settings changed")
                    conn.stop()
                    del self.connections[sid]
            for sid, target in targets.items():
                if sid not in self.connections:
                    try:
                        conn = GxConnection(target, self.node_id, self.on_change)
                        conn.start()
                    except (OSError, ValueError) as exc:
                        log.error("gx %s: cannot start (%s)", target.name, exc)
                        continue
                    self.connections[sid] = conn

    def get(self, system_id: str) -> GxConnection | None:
        with self.lock:
            return self.connections.get(system_id)

    def all(self) -> list[GxConnection]:
        with self.lock:
            return list(self.connections.values())

    def stop(self) -> None:
        for conn in self.all():
            conn.stop()
