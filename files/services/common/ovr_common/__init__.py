"""Code the ovr-tele Python services share (events, fleet, gxdiscovery); standard library plus
the Debian packages the services already use (flask/werkzeug, requests).

Modules, one job each:
  settings     - env-file settings: a typed table (variable, default, help, parser), --help text
  atomic       - atomic file writes (temporary file in the same directory, fsync, rename)
  sqlite       - connect with the services' pragmas, write transactions, numbered migrations
  vm           - the VictoriaMetrics HTTP client and its one label-quoting function
  errors       - ApiError and the Flask JSON error handlers (no stack trace reaches a client)
  credentials  - a credentials file reloaded when it changes, with an HMAC-keyed cache
  protocol     - node ids, reserved ids, MQTT topics, JSON decoding that refuses NaN/Infinity

On a host this directory is /opt/ovr/services/common, on every service's PYTHONPATH.
"""
