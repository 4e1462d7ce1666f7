"""CLI: python3 -m ovr_gxsim [--help]. Logs to stdout (journald under systemd)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

from . import __version__
from .config import parse_config
from .engine import Simulator
from .profile import ProfileError, load_profile

log = logging.getLogger("ovr_gxsim")


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(sys.argv[1:] if argv is None else argv, os.environ)
    logging.basicConfig(
        level=cfg.log_level,
        stream=sys.stdout,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        profile = load_profile(cfg.profile, cfg.portal_id)
        sim = Simulator(
            profile,
            cfg.portal_id,
            time.time,
            seed=cfg.seed,
            keepalive_timeout=cfg.keepalive_timeout,
            heartbeat_interval=cfg.heartbeat_interval,
            load_rate=cfg.load_rate,
            chaos=cfg.chaos,
            chaos_interval=cfg.chaos_interval,
            disappear=cfg.disappear,
        )
    except ProfileError as exc:
        log.error("%s", exc)
        return 1

    from .mqtt import MqttRunner  # paho is only needed once we really connect

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info(
        "ovr-gxsim %s: portal %s, profile %s (%d topics), keepalive %.0f s, seed %d%s%s",
        __version__,
        cfg.portal_id,
        profile.name,
        len(sim.state.items),
        cfg.keepalive_timeout,
        cfg.seed,
        f", load {cfg.load_rate:g} msg/s" if cfg.load_rate else "",
        ", chaos on" if cfg.chaos else "",
    )
    return MqttRunner(cfg, sim).run(stop)


if __name__ == "__main__":
    sys.exit(main())
