"""CLI: python3 -m ovr_gxdiscovery [--env-file FILE] [--dry-run] | --check-inventory FILE | --version

Logs to stdout (journald under systemd), one line per GX and a summary line; never a secret.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .inventory import InventoryError, load_inventory
from .run import EXIT_CONFIG, EXIT_FAILED, run_lock, run_once
from .settings import SettingsError, describe, load_settings, parse_env_file

log = logging.getLogger("ovr_gxdiscovery")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python3 -m ovr_gxdiscovery",
        description="ovr-refresh-gx-mqtt-sources: discover the configured GX (portal id, system_id), send their "
        "keepalives, and write gx_systems.json and the Telegraf GX inputs when they change. "
        "Exit 0 when the run worked (even with unreachable GX), 1 on a failure, 2 on bad settings/inventory.",
        epilog=describe(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--env-file", type=Path, help="read KEY=VALUE defaults from this file (e.g. /etc/ovr/edge.env); "
                   "variables already in the environment win")
    p.add_argument("--dry-run", action="store_true", help="probe (keepalives are sent) and print the outputs "
                   "(passwords masked); write nothing, no reload")
    p.add_argument("--check-inventory", type=Path, metavar="FILE",
                   help="only validate a gx_inventory.json (for Ansible's validate:) and exit 0 or 2")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)

    if args.check_inventory:
        try:
            systems = load_inventory(args.check_inventory)
        except InventoryError as exc:
            log.error("%s", exc)
            return EXIT_CONFIG
        log.info("%s: %d GX, valid", args.check_inventory, len(systems))
        return 0

    env = dict(os.environ)
    if args.env_file:
        try:
            env = {**parse_env_file(args.env_file.read_text(encoding="utf-8")), **env}
        except OSError as exc:
            log.error("--env-file %s: %s", args.env_file, exc.strerror or exc)
            return EXIT_CONFIG
    try:
        settings = load_settings(env)
    except SettingsError as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    log.setLevel(settings.log_level)
    try:
        with run_lock(settings.state_dir) as locked:
            if not locked:
                log.error("another run holds %s/lock; giving up", settings.state_dir)
                return EXIT_FAILED
            return run_once(settings, dry_run=args.dry_run)
    except OSError as exc:
        log.error("state directory %s: %s", settings.state_dir, exc.strerror or exc)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
