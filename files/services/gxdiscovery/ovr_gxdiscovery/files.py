"""Output files: atomic write-if-changed (ovr_common.atomic) and the group of the Telegraf file.

Equal content leaves a file alone (same inode, same mtime); different content is written to a
temporary file in the same directory, fsynced and renamed over the target. A symlink at the
target is followed, so /etc/ovr/gx_systems.json may point into the state directory (which the
hardened unit may write) while readers keep using the /etc/ovr path.
"""

from __future__ import annotations

import grp

from ovr_common.atomic import WriteError, read_bytes, write_if_changed

__all__ = ["WriteError", "read_bytes", "resolve_group", "write_if_changed"]


def resolve_group(name: str | None) -> int | None:
    if not name:
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise WriteError(f"group {name!r} does not exist (OVR_TELEGRAF_CONF_GROUP)") from None
