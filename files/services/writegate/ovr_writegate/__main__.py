"""`python3 -m ovr_writegate --check FILE`: validate a limits file (roles/cloud's `validate:`)."""

from __future__ import annotations

import argparse
import sys

from .config import ConfigError, load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ovr_writegate", description=__doc__)
    parser.add_argument("--check", metavar="FILE", required=True, help="the limits file to validate")
    args = parser.parse_args(argv)
    try:
        limits = load(args.check)
    except ConfigError as exc:
        print(f"ovr-writegate: {exc}", file=sys.stderr)
        return 1
    print(f"ovr-writegate: {args.check} is valid ({len(limits.metric_names)} metric name patterns, "
          f"{limits.series_per_node} series per node)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
