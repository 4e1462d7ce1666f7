"""ovr-events: the edge events service (realtime cache, guarded GX control, events, reports).

Two processes share one SQLite store:
- the HTTP app (`ovr_events.api`, Flask under gunicorn) answers the dashboard;
- the worker (`python3 -m ovr_events worker`) owns every long-lived connection: the GX
  brokers (live cache + control writes), the local broker (cloud sync), heartbeats and the
  report jobs. It runs once per node, never once per gunicorn worker.
"""

__version__ = "0.1.0"
SCHEMA = 1  # version of the MQTT payloads (ARCHITECTURE "Edge <-> cloud MQTT protocol")
