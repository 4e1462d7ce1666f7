"""ovr-refresh-gx-mqtt-sources: GX discovery, keepalive and Telegraf GX inputs for an edge node.

One run (a systemd oneshot fired by a timer every ~20 s) probes every configured GX over MQTT,
keeps its Venus OS notifications alive, and writes /etc/ovr/gx_systems.json and the Telegraf
fragment gx_mqtt_sources.conf only when their content changes. README.md has the contract.
Needs ovr_common (files/services/common) on the PYTHONPATH.

Modules, one job each:
  settings   - the environment (edge.env) as typed, validated settings (an ovr_common.settings table)
  inventory  - gx_inventory.json: the configured GX, validated (ovr_events reads it through this too)
  naming     - CustomName -> system_id normalisation and uniqueness on the node
  probe      - one GX over MQTT (paho): portal id, names, keepalive
  state      - per-GX memory between runs: first contact, lost, grace, full republish
  render     - gx_systems.json and gx_mqtt_sources.conf text
  files      - the Telegraf file's group; atomic write-if-changed is ovr_common.atomic
  telegraf   - `telegraf config check` of a candidate and the reload command
  run        - one run: ties the above together, logs, exit code
"""

__version__ = "1.0.0"
