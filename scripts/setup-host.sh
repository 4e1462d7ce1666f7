#!/usr/bin/env bash
# Prepare this machine to run the test hosts: Debian packages and the podman configuration
# these Firecracker VMs need (chromium: the browser the web tests drive) (see docs/adr/0002-test-hosts-podman-systemd.md). Idempotent.
set -euo pipefail

PACKAGES=(podman runc netavark aardvark-dns containernetworking-plugins debootstrap mosquitto mosquitto-clients victoria-metrics caddy uidmap slirp4netns nftables iproute2 chromium)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup-host: installing ${missing[*]}" >&2
  if [[ $(id -u) -ne 0 ]]; then echo "setup-host: need root to apt-get install ${missing[*]}" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's mosquitto package enables a broker on :1883; tests start their own on free ports.
if [[ -f /run/mosquitto/mosquitto.pid ]]; then
  kill "$(cat /run/mosquitto/mosquitto.pid)" 2>/dev/null || true
  rm -f /run/mosquitto/mosquitto.pid
fi

# crun refuses the hybrid cgroup layout here; rlimits may not be raised above the machine's
# (no CAP_SYS_RESOURCE); journald is not running, so events go to a file.
conf=/etc/containers/containers.conf
want=$(cat <<CONF
# Written by ovr-tele scripts/setup-host.sh
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
)
if [[ ! -f $conf ]] || [[ "$(cat "$conf")" != "$want" ]]; then
  mkdir -p /etc/containers
  printf '%s\n' "$want" >"$conf"
  echo "setup-host: wrote $conf" >&2
fi
