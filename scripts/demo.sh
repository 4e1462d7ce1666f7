#!/usr/bin/env bash
# The demo fleet in local systemd containers: a GX simulator and an edge on a boat LAN,
# the edge and a cloud on a WAN — the networks a real installation has.
#
#   scripts/demo.sh up      start (or reuse) the containers, converge site.yml, print where to look
#   scripts/demo.sh down    remove the containers and networks
#   scripts/demo.sh status  print where to look again
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

IMAGE="${OVR_TEST_IMAGE:-localhost/ovr-trixie-systemd:latest}"
LAN=ovr-demo-lan
WAN=ovr-demo-wan
declare -A NETS=([ovr-demo-gx]="$LAN" [ovr-demo-edge]="$LAN $WAN" [ovr-demo-cloud]="$WAN")
HOSTS=(ovr-demo-gx ovr-demo-edge ovr-demo-cloud)
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg"
TELEGRAF_BIN="${TELEGRAF_BIN:-$(scripts/build-telegraf.sh)}"
export TELEGRAF_BIN

start() {
  for net in "$LAN" "$WAN"; do
    podman network exists "$net" || podman network create "$net" >/dev/null
  done
  for h in "${HOSTS[@]}"; do
    if [[ "$(podman inspect -f '{{.State.Running}}' "$h" 2>/dev/null)" == "true" ]]; then
      continue
    fi
    podman rm -f "$h" >/dev/null 2>&1 || true
    args=(run -d --name "$h" --hostname "$h" --systemd=always --cap-add NET_ADMIN --cap-add SYS_ADMIN --label ovr-demo=1)
    for net in ${NETS[$h]}; do args+=(--network "$net"); done
    podman "${args[@]}" "$IMAGE" /lib/systemd/systemd >/dev/null
    echo "demo: started $h"
  done
  for h in "${HOSTS[@]}"; do
    state=$(podman exec "$h" systemctl is-system-running --wait || true)
    [[ "$state" == running ]] || { echo "demo: $h did not boot cleanly ($state)"; podman exec "$h" systemctl --failed; exit 1; }
  done
}

converge() {
  mkdir -p .demo/credentials && chmod 0700 .demo
  ansible-playbook -i inventory/demo site.yml
}

status() {
  echo
  echo "ovr-tele demo fleet"
  echo "==================="
  for h in "${HOSTS[@]}"; do
    ips=$(podman inspect -f '{{range $n, $c := .NetworkSettings.Networks}}{{$n}}={{$c.IPAddress}} {{end}}' "$h" 2>/dev/null || echo "not running")
    echo
    echo "$h   $ips"
    podman exec "$h" systemctl list-units --type=service,timer --state=running,waiting --no-legend --plain \
      'ovr-*' 'mosquitto*' 'telegraf*' 'vmagent*' 'victoria*' 'caddy*' 'nftables*' 'ssh*' 2>/dev/null \
      | awk '{printf "    %-32s %s\n", $1, $4}'
    podman exec "$h" systemctl list-units --type=service --state=exited --no-legend --plain 'nftables*' 2>/dev/null \
      | awk '{printf "    %-32s %s (firewall loaded)\n", $1, $4}'
  done
  echo
  echo "Data on the edge (VictoriaMetrics, loopback of ovr-demo-edge):"
  podman exec ovr-demo-edge sh -c '
    n=$(curl -s http://127.0.0.1:8428/api/v1/label/__name__/values | grep -o "\"victron_[a-z0-9_]*\"" | wc -l)
    soc=$(curl -s --get --data-urlencode "query=last_over_time(victron_system_dc_battery_soc_value[1m])" \
          http://127.0.0.1:8428/api/v1/query | grep -o "\"value\":\[[^]]*\]" | head -n1)
    echo "    victron_* metric names: $n;  battery SoC now: ${soc:-no data yet (give it ~20 s)}"' 2>/dev/null || true
  echo
  echo "Data in the cloud (downsampled, arriving through the edge's vmagent and MQTT bridge):"
  podman exec ovr-demo-cloud sh -c '
    soc=$(curl -s --get --data-urlencode "query=last_over_time(victron_system_dc_battery_soc_value[1m])" \
          http://127.0.0.1:8428/api/v1/query | grep -o "\"node_id\":\"[^\"]*\"\|\"value\":\[[^]]*\]" | tr "\n" " ")
    echo "    battery SoC per node: ${soc:-no data yet (the first 10 s interval is still being aggregated)}"
    bridge=$(mosquitto_sub -h 127.0.0.1 -u ovr-fleet -P "$(cat /etc/ovr/secrets/mqtt-fleet.password)" \
             -t "ovr/+/bridge" -W 2 -v 2>/dev/null | tr "\n" " ")
    echo "    MQTT bridges (1 = connected): ${bridge:-none yet}"' 2>/dev/null || true
  cloud_ip=$(podman inspect -f '{{(index .NetworkSettings.Networks "ovr-demo-wan").IPAddress}}' ovr-demo-cloud 2>/dev/null || true)
  cat <<TXT

Cloud: https://ovr-demo-cloud (address ${cloud_ip:-?} on the demo WAN; TLS from the demo's own CA,
.demo/credentials/cloud-ca.pem). Log in as operator "ops", password in .demo/credentials/operator-ops:
  curl --cacert .demo/credentials/cloud-ca.pem --resolve ovr-demo-cloud:443:${cloud_ip:-?} \\
       -u "ops:\$(cat .demo/credentials/operator-ops)" 'https://ovr-demo-cloud/api/v1/query?query=victron_system_dc_battery_soc_value'
  Live MQTT of the fleet (operators, WebSocket through Caddy): wss://ovr-demo-cloud/mqtt
  The fleet API (nodes, events, reports; same login):
    curl --cacert .demo/credentials/cloud-ca.pem --resolve ovr-demo-cloud:443:${cloud_ip:-?} \\
         -u "ops:\$(cat .demo/credentials/operator-ops)" https://ovr-demo-cloud/api/nodes

Edge API (the technicians' dashboard backend; reads open on the boat LAN, changes as "tech",
password in .demo/credentials/edge-tech):
  podman exec ovr-demo-edge curl -s http://127.0.0.1:8088/api/realtime
  podman exec ovr-demo-edge curl -s -u "tech:\$(cat .demo/credentials/edge-tech)" -H 'Content-Type: application/json' \\
       -d '{"systems": ["<system_id from /api/systems>"], "name": "Demo job"}' http://127.0.0.1:8088/api/events

Where to look
  GX simulator topics (as the edge sees them; a keepalive wakes the GX):
    podman exec ovr-demo-gx sh -c '. /etc/ovr/gxsim.env; mosquitto_pub -p 1884 -t R/\$GXSIM_PORTAL_ID/keepalive -m ""; timeout 5 mosquitto_sub -p 1884 -t "N/#" -v | head -20'
  Query the edge's data:    podman exec ovr-demo-edge curl -s 'http://127.0.0.1:8428/api/v1/query?query=victron_vebus_ac_out_p_value'
  GX discovery/keepalive:   podman exec ovr-demo-edge journalctl -u ovr-refresh-gx-mqtt-sources -n 20
  What the edge knows:      podman exec ovr-demo-edge cat /etc/ovr/gx_systems.json
  Logs of a host:           podman exec -it ovr-demo-edge journalctl -f
  A shell on a host:        podman exec -it ovr-demo-edge bash
  Firewall of a host:       podman exec ovr-demo-edge nft list table inet ovr
  Generated demo secrets:   .demo/credentials/ (not in git)
  Converge again:           make demo      Tear down: make demo-down
TXT
}

case "${1:-up}" in
  up) start; converge; status ;;
  status) status ;;
  down)
    podman rm -f -t 2 "${HOSTS[@]}" >/dev/null 2>&1 || true
    podman network rm "$LAN" "$WAN" >/dev/null 2>&1 || true
    echo "demo: removed" ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
