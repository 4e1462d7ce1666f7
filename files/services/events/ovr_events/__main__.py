"""python3 -m ovr_events worker | users-sync FILE | check-control FILE | openapi"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .config import ConfigError, describe, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ovr_events", description="ovr-tele edge events service", epilog=describe(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-file", type=Path, default=None, help="default: $OVR_EVENTS_ENV_FILE or /etc/ovr/edge.env")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("worker", help="run the background worker (ovr-events-worker.service)")
    us = sub.add_parser("users-sync", help="hash the users given as JSON on stdin into FILE; prints changed/unchanged")
    us.add_argument("file", type=Path)
    us.add_argument("--group", default="ovr")
    cc = sub.add_parser("check-control", help="validate a control limits file (exit 0 valid, 2 invalid)")
    cc.add_argument("file", type=Path)
    sub.add_parser("openapi", help="print the OpenAPI document")
    args = parser.parse_args(argv)

    if args.cmd == "users-sync":
        from .auth import UsersError, sync_users

        try:
            changed = sync_users(args.file, json.load(sys.stdin), args.group or None)
        except (UsersError, ValueError) as exc:
            print(f"users-sync: {exc}", file=sys.stderr)
            return 2
        print("changed" if changed else "unchanged")
        return 0
    if args.cmd == "check-control":
        from .control import ControlPolicy

        try:
            ControlPolicy.load(args.file)
        except ValueError as exc:
            print(f"check-control: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.cmd == "openapi":
        from .api.openapi import document

        json.dump(document(), sys.stdout, indent=2)
        print()
        return 0
    try:
        settings = load_settings(args.env_file)
    except ConfigError as exc:
        print(f"ovr_events: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    from .worker import main as worker_main

    try:
        return worker_main(settings)
    except ConfigError as exc:  # e.g. the local broker's password file is unreadable
        print(f"ovr_events: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
