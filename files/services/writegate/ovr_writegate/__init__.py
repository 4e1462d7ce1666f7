"""ovr-writegate: what one node may write into the fleet's VictoriaMetrics (docs/adr/0014).

Caddy authenticates a node, adds extra_label=node_id=<it> and passes the write here; the gate
keeps of each request only the series the fleet accepts and forwards them to VictoriaMetrics:
  - metric names the edges send (the edge role's edge_vmagent_cloud_metrics, one list);
  - at most N labels per series, bounded label name and value lengths;
  - bounded request bodies, compressed and decompressed (413 past them);
  - a series budget per node: at most N distinct series per node in a rolling window; a known
    series always passes, a new one past the budget is dropped and counted.
The budget lives in memory: one process (gunicorn, one worker, threads), reset by a restart.
Needs ovr_common (files/services/common) on the PYTHONPATH only for the release layout.

Modules, one job each:
  config   - the limits file (/etc/ovr/writegate.json, rendered by roles/cloud), validated
  codecs   - snappy / zstd / gzip, bounded decompression (Debian's python3-snappy, python3-zstandard)
  series   - the two write formats: Prometheus remote write (protobuf) and Influx line protocol
  budget   - the series budget per node (two generations of series hashes)
  gate     - one request's series through the checks and the budget: what is kept, what refused
  web      - the WSGI app: /api/v1/write, /write, /health, /metrics; forwarding to VictoriaMetrics
"""

__version__ = "1.0.0"
