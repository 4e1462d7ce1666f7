"""paho-mqtt adapter: connects, subscribes to R/ and W/, runs the simulator's main loop.

paho's network thread only queues incoming messages; everything else (the simulator, all
publishing) runs in the main thread, so the simulator needs no locks. paho reconnects by
itself (1..10 s back-off); each (re)connect counts as a GX restart: the retained Serial and
the keepalive marker are published again and earlier keepalives are forgotten.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .config import Config
from .engine import Simulator
from .flashmq import Message

log = logging.getLogger("ovr_gxsim.mqtt")

POLL_INTERVAL = 0.05
_CONNECTED = object()


class MqttRunner:
    def __init__(self, cfg: Config, sim: Simulator) -> None:
        self.cfg = cfg
        self.sim = sim
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.connected = threading.Event()
        self.stopping = False
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if cfg.username:
            self.client.username_pw_set(cfg.username, cfg.password)
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self.client.enable_logger(logging.getLogger("ovr_gxsim.paho"))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    # --- paho callbacks (network thread) -------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            log.error("broker %s:%d refused the connection: %s",
                      self.cfg.broker_host, self.cfg.broker_port, reason)
            return
        portal = self.cfg.portal_id
        client.subscribe([(f"R/{portal}/#", 0), (f"W/{portal}/#", 0)])
        self.connected.set()
        self.inbox.put(_CONNECTED)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        self.connected.clear()
        if not self.stopping:
            log.warning("disconnected from broker (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.inbox.put((message.topic, bytes(message.payload)))

    # --- main thread -------------------------------------------------------------------
    def publish(self, messages: list[Message]) -> None:
        if not self.connected.is_set():
            return
        for m in messages:
            self.client.publish(m.topic, m.payload, qos=0, retain=m.retain)

    def run(self, stop: threading.Event) -> int:
        self.client.connect_async(self.cfg.broker_host, self.cfg.broker_port, keepalive=30)
        self.client.loop_start()
        next_poll = time.monotonic()
        try:
            while not stop.is_set():
                try:
                    item = self.inbox.get(timeout=max(0.0, next_poll - time.monotonic()))
                except queue.Empty:
                    item = None
                if item is _CONNECTED:
                    self.publish(self.sim.start())
                    log.info("connected to %s:%d as portal %s; retained Serial published",
                             self.cfg.broker_host, self.cfg.broker_port, self.cfg.portal_id)
                elif item is not None:
                    topic, payload = item
                    try:
                        self.publish(self.sim.handle(topic, payload))
                    except Exception:  # a bad request must never take the GX down
                        log.exception("error handling %s", topic)
                now = time.monotonic()
                if now >= next_poll:
                    self.publish(self.sim.poll())
                    next_poll = max(next_poll + POLL_INTERVAL, now)
        finally:
            log.info("stopping")
            self.stopping = True
            self.client.disconnect()
            self.client.loop_stop()
        return 0
