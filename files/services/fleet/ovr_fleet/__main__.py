"""CLI: python3 -m ovr_fleet worker | check-config | migrate  [--env-file FILE]

The HTTP API runs under gunicorn: `gunicorn 'ovr_fleet.web:create_app()'`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .auth import Operators, OperatorsError
from .config import SettingsError, describe, settings_from
from .store import open_db


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m ovr_fleet", description="ovr-fleet: the cloud fleet service",
                                epilog=describe(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["worker", "check-config", "migrate"])
    p.add_argument("--env-file", type=Path, default=Path(os.environ.get("OVR_FLEET_ENV_FILE", "/etc/ovr/cloud.env")))
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    args = p.parse_args(argv)
    try:
        settings = settings_from(args.env_file if args.env_file.exists() else None, os.environ)
    except SettingsError as exc:
        print(f"ovr-fleet: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "check-config":
        try:
            Operators(settings.operators_file).file.entries()
            settings.mqtt_password()
        except (OperatorsError, SettingsError) as exc:
            print(f"ovr-fleet: {exc}", file=sys.stderr)
            return 2
        print("ovr-fleet: settings ok")
        return 0
    if args.command == "migrate":
        open_db(settings.db_path)
        return 0
    from .worker import Worker

    try:
        worker = Worker(settings)
    except SettingsError as exc:
        print(f"ovr-fleet: {exc}", file=sys.stderr)
        return 2
    worker.install_signals()
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
