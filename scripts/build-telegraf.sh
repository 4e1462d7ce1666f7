#!/usr/bin/env bash
# Build a slim Telegraf from the Go module proxy into a cache keyed by version + build tags.
# Reused when present, so it is built once per machine. Prints the binary path on stdout.
#
#   scripts/build-telegraf.sh            # build (or reuse) and print the path
#   TELEGRAF_VERSION=v1.39.3 scripts/build-telegraf.sh
set -euo pipefail

TELEGRAF_VERSION="${TELEGRAF_VERSION:-v1.39.3}"
# The plugins the edge uses; parsers and serializers are not pulled in by inputs/outputs on their own.
TELEGRAF_TAGS="${TELEGRAF_TAGS:-custom,inputs.mqtt_consumer,inputs.cpu,inputs.mem,inputs.disk,inputs.diskio,inputs.system,inputs.net,inputs.temp,inputs.modbus,inputs.internal,inputs.file,processors.starlark,outputs.influxdb,outputs.http,outputs.file,parsers.json,parsers.influx,parsers.value,serializers.influx}"
CACHE_ROOT="${OVR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ovr-tele}"

key="$(printf '%s|%s' "$TELEGRAF_VERSION" "$TELEGRAF_TAGS" | sha256sum | cut -c1-12)"
dest="$CACHE_ROOT/telegraf/${TELEGRAF_VERSION}-${key}"
bin="$dest/telegraf"

if [[ -x "$bin" ]]; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { echo "build-telegraf: 'go' not found; install Go >= 1.26 (Telegraf ${TELEGRAF_VERSION} needs it)" >&2; exit 1; }

# Verification of downloaded modules stays on; say where modules come from if it fails.
echo "build-telegraf: building telegraf ${TELEGRAF_VERSION} (tags ${TELEGRAF_TAGS}); GOPROXY=$(go env GOPROXY) GOSUMDB=$(go env GOSUMDB)" >&2
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
GOBIN="$tmp/bin" CGO_ENABLED=0 GOFLAGS="-trimpath" \
  go install -ldflags "-s -w" -tags "$TELEGRAF_TAGS" "github.com/influxdata/telegraf/cmd/telegraf@${TELEGRAF_VERSION}" >&2
mkdir -p "$dest"
install -m 0755 "$tmp/bin/telegraf" "$bin.partial"
mv "$bin.partial" "$bin"
printf 'version=%s\ntags=%s\n' "$TELEGRAF_VERSION" "$TELEGRAF_TAGS" >"$dest/BUILD_INFO"
echo "$bin"
