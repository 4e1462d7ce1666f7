#!/usr/bin/env bash
# Build the Debian 13 (trixie) systemd image the test hosts boot, with debootstrap + podman import.
# The image carries a label with the hash of its recipe (this file); it is rebuilt only when the
# recipe changes. The Debian mirror is the one this machine's apt already uses.
#
#   scripts/build-image.sh            # build if needed, print the image name
#   FORCE=1 scripts/build-image.sh    # rebuild
set -euo pipefail

IMAGE="${OVR_TEST_IMAGE:-localhost/ovr-trixie-systemd:latest}"
SUITE=trixie
INCLUDE=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,ca-certificates,procps,iproute2,curl,gnupg,nftables,openssh-server,systemd-timesyncd
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
recipe_hash="$( { cat "${BASH_SOURCE[0]}"; echo "$SUITE $INCLUDE"; } | sha256sum | cut -c1-16)"

current="$(podman image inspect --format '{{ index .Labels "ovr.recipe" }}' "$IMAGE" 2>/dev/null || true)"
if [[ "$current" == "$recipe_hash" && -z "${FORCE:-}" ]]; then
  echo "$IMAGE"
  exit 0
fi

mirror="${OVR_DEBIAN_MIRROR:-}"
if [[ -z "$mirror" ]]; then
  # First "URIs:" of a deb822 source, else first "deb" line of sources.list — the mirror apt uses here.
  mirror="$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1 || true)"
  [[ -n "$mirror" ]] || mirror="$(grep -hsE '^deb ' /etc/apt/sources.list | awk '{print $2}' | head -n1 || true)"
fi
[[ -n "$mirror" ]] || { echo "build-image: cannot tell which Debian mirror to use; set OVR_DEBIAN_MIRROR" >&2; exit 1; }

rootfs="$(mktemp -d /var/tmp/ovr-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
echo "build-image: debootstrap $SUITE from $mirror (recipe $recipe_hash)" >&2
debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
  tail -n 30 "$rootfs.log" >&2; echo "build-image: debootstrap failed (full log $rootfs.log)" >&2; exit 1; }
rm -f "$rootfs.log"

# Container-friendly systemd: no getty on a console that isn't there, no udev-settle waits,
# no first-boot wizard, no SSH host keys baked into the image (common creates them per host).
chroot "$rootfs" systemctl mask getty@tty1.service serial-getty@.service console-getty.service \
  systemd-udevd.service systemd-udev-trigger.service systemd-firstboot.service >/dev/null 2>&1 || true
rm -f "$rootfs"/etc/ssh/ssh_host_*
# Without host keys sshd cannot start; it stays off until roles/common generated them.
chroot "$rootfs" systemctl disable ssh.service >/dev/null 2>&1 || true
echo "ovr-test" >"$rootfs/etc/hostname"
: >"$rootfs/etc/machine-id"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb  # package lists stay: a real host has them too (check mode needs them)

tar -C "$rootfs" -c . | podman import \
  --change 'CMD ["/lib/systemd/systemd"]' \
  --change 'ENV container=podman' \
  --change "LABEL ovr.recipe=$recipe_hash" \
  --change 'STOPSIGNAL SIGRTMIN+3' \
  - "$IMAGE" >/dev/null
echo "$IMAGE"
