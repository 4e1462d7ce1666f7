"""ovr-fleet: the cloud fleet service (nodes, deployments, event registry, reports, tile budget).

Two processes share one SQLite database: the HTTP API (gunicorn, `ovr_fleet.web:create_app()`)
and the MQTT worker (`python3 -m ovr_fleet worker`). Contract: files/services/fleet/README.md.
"""

__version__ = "0.1.0"
SCHEMA = 1  # the integer `schema` of every MQTT payload this service publishes
