"""Venus OS GX simulator: behaves like dbus-flashmq on a GX, for tests and demos.

Modules, one job each:
  profile  - the device profile (JSON) as typed, validated data
  model    - deterministic plant model that makes the values evolve
  flashmq  - dbus-flashmq behaviour (keepalive, heartbeat, R/W, only-changed), no I/O
  chaos    - malformed-payload cycle and the benchmark load generator
  engine   - ties profile, model, flashmq state, chaos and load together, no I/O
  config   - command line and environment
  mqtt     - paho-mqtt adapter and main loop
"""

__version__ = "1.0.0"
