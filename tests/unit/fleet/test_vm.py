"""The VictoriaMetrics client against a real VictoriaMetrics: node labels for the worker,
bounded history through the API, end markers."""

from __future__ import annotations

import time

import requests
from fleet_testlib import basic, make_settings
from ovr_fleet import vm, web
from ovr_fleet.store import open_db, tx


def write(url: str, lines: list[str]) -> None:
    r = requests.post(url + "/api/v1/import/prometheus", data="\n".join(lines) + "\n", timeout=5)
    assert r.status_code == 204, r.text
    requests.get(url + "/internal/force_flush", timeout=5)


def test_label_sets_history_and_end_markers(victoria, tmp_path):
    now = int(time.time() * 1000)
    write(victoria, [f'victron_system_dc_battery_soc_value{{node_id="vm-a",deployment_id="acme",system_id="gx-1"}} {v} {now - i * 10_000}'
                     for i, v in enumerate([80, 79, 78, 77])]
          + [f'victron_system_dc_battery_soc_value{{node_id="vm-b",deployment_id="zeta",system_id="gx-9"}} 50 {now - 5000}'])
    client = vm.VM(victoria, 5)
    deadline = time.time() + 10
    while len(sets := client.label_sets()) < 2 and time.time() < deadline:
        requests.get(victoria + "/internal/force_flush", timeout=5)
        time.sleep(0.1)
    assert {"node_id": "vm-a", "deployment_id": "acme", "system_id": "gx-1"} in sets
    assert {"node_id": "vm-b", "deployment_id": "zeta", "system_id": "gx-9"} in sets

    settings = make_settings(tmp_path, OVR_VM_URL=victoria)
    from ovr_fleet import fleet

    conn = open_db(settings.db_path)
    with tx(conn):
        fleet.sync_vm_labels(conn, sets)
    api = web.create_app(settings).test_client()
    nodes = {n["node_id"]: n for n in api.get("/api/nodes", headers=basic("vic")).json["nodes"]}
    assert nodes["vm-a"]["deployment_id"] == "acme" and nodes["vm-a"]["systems"][0]["system_id"] == "gx-1"

    r = api.get(f"/api/nodes/vm-a/history?metric=soc&start={now / 1000 - 60}&end={now / 1000 + 1}&step=10", headers=basic("vic"))
    assert r.status_code == 200, r.json
    [series] = r.json["series"]
    assert series["labels"]["node_id"] == "vm-a" and {77.0, 78.0, 79.0} <= {v for _, v in series["values"]}
    # Label values are quoted, not spliced: an injection attempt is just a system that does not exist.
    r = api.get('/api/nodes/vm-a/history?metric=soc&system_id=x"}or{node_id="vm-b', headers=basic("vic"))
    assert r.status_code == 400

    assert client.write_end_markers([{"event_id": "ev \"1\"", "node_id": "vm-a", "system_id": "gx-1", "deployment_id": "acme"}], now) == 1
    deadline, out = time.time() + 10, ""
    while '"values":[0]' not in out and time.time() < deadline:  # the import becomes searchable after a flush
        requests.get(victoria + "/internal/force_flush", timeout=5)
        out = requests.get(victoria + "/api/v1/export", params={"match[]": "ovr_event_active"}, timeout=5).text
        time.sleep(0.1)
    assert '"event_id":"ev \\"1\\""' in out and '"values":[0]' in out
