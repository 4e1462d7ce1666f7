"""One run: inventory -> probes (parallel) -> state -> outputs (write-if-changed) -> reload.

Exit codes: 0 the run worked (also when GX are unreachable); 1 a real failure (an output could
not be written, Telegraf refused the generated config, the reload failed, a GX's password or CA
file is unusable, the lock was held too long); 2 unusable settings or inventory (nothing written).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import files, render, state, telegraf
from .inventory import GxConfig, InventoryError, load_inventory, read_password
from .naming import Candidate, assign_system_ids
from .probe import Decide, ProbeRequest, ProbeResult, describe_error, probe
from .settings import Settings

log = logging.getLogger("ovr_gxdiscovery")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
LOCK_WAIT = 30.0

ProbeFn = Callable[[ProbeRequest, Decide], ProbeResult]


class Redactor(logging.Filter):
    """Replaces every known secret in log records (belt and braces: nothing logs one on purpose)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = telegraf.redact(record.getMessage(), self.secrets)
            record.args = None
        return True


REDACTOR = Redactor()
log.addFilter(REDACTOR)  # on the logger: every handler (journald via stdout, pytest's) gets redacted records


@dataclass
class Summary:
    configured: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    conf: str = "unchanged"
    systems: str = "unchanged"
    reload: str = "not needed"
    rc: int = EXIT_OK


def probe_all(requests: dict[str, ProbeRequest], decide: dict[str, Decide], timeout: float, probe_fn: ProbeFn) -> dict[str, ProbeResult]:
    """Probe every GX in its own daemon thread; whatever has not answered by `timeout` counts as
    unreachable and is abandoned (the process exits right after the run)."""
    results: dict[str, ProbeResult] = {}
    lock = threading.Lock()
    closed = False

    def worker(name: str, req: ProbeRequest) -> None:
        res = probe_fn(req, decide[name])
        with lock:
            if not closed:
                results[name] = res

    threads = [threading.Thread(target=worker, args=(n, r), name=f"gx-{n}", daemon=True) for n, r in requests.items()]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    with lock:
        closed = True
        out = dict(results)
    for name in requests:
        out.setdefault(name, ProbeResult(outcome="unreachable", reason=f"no answer within the run limit ({timeout:g}s)"))
    return out


@contextmanager
def run_lock(state_dir: Path, wait: float = LOCK_WAIT) -> Iterator[bool]:
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / "lock", os.O_RDWR | os.O_CREAT, 0o640)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.2)
        yield True
    finally:
        os.close(fd)


def _ago(now: float, then: float) -> str:
    return f"{max(0.0, now - then):.0f}s"


def _gx_line(gx: GxConfig, res: ProbeResult, before: state.GxRecord | None, after: state.GxRecord | None,
             sid: str | None, now: float, s: Settings) -> tuple[int, str]:
    head = f"gx {gx.name} ({gx.address})"
    if res.outcome == "ok" and after is not None:
        mode = f"keepalive {res.mode}" + (f" ({res.mode_why})" if res.mode_why else "")
        text = f"{head}: online, portal {after.portal_id}, system_id {sid}, {mode}"
        if res.woke:
            text += ", woken (Serial was not retained)"
        if res.names is not None:
            if after.display_name:
                text += f", name {json.dumps(after.display_name, ensure_ascii=False)} from {after.name_source}"
            else:
                text += ", no CustomName/SystemName: system_id from the portal id"
            if not res.names.complete:
                text += " (republish not confirmed)"
        return logging.INFO, f"{text}, {res.duration:.1f}s"
    if res.outcome == "config":
        return logging.ERROR, f"{head}: not probed: {res.reason}"
    reason = res.reason or res.outcome
    if after is None:
        return logging.WARNING, f"{head}: not found ({reason})"
    if after.status == state.DROPPED:
        if before is not None and before.status != state.DROPPED:
            return logging.WARNING, (f"{head}: dropped from the outputs, not seen for {_ago(now, after.last_seen)}"
                                     f" (grace {s.grace_seconds:g}s) ({reason})")
        return logging.WARNING, f"{head}: not found, dropped {_ago(now, after.last_seen)} after last seen ({reason})"
    drops = render.iso(after.last_seen + s.grace_seconds)
    if after.status == state.REFUSED:
        return logging.WARNING, (f"{head}: {reason}; left out of Telegraf's inputs (Telegraf exits on a refused login);"
                                 f" check username/password_file; listed until {drops}")
    if after.status == state.LOST:
        return logging.WARNING, f"{head}: lost, last seen {_ago(now, after.last_seen)} ago ({reason}); kept until {drops}"
    return logging.WARNING, (f"{head}: not reached ({reason}); last seen {_ago(now, after.last_seen)} ago,"
                             f" reported lost after {s.lost_after_seconds:g}s")


def run_once(s: Settings, *, now: Callable[[], float] = time.time, probe_fn: ProbeFn = probe, dry_run: bool = False) -> int:
    started = time.monotonic()
    try:
        inventory = load_inventory(s.inventory)
    except InventoryError as exc:
        log.error("%s", exc)
        log.error("summary: nothing probed or written: fix %s", s.inventory)
        return EXIT_CONFIG
    summary = Summary(configured=len(inventory))
    st, warnings = state.load_state(s.state_file)
    for w in warnings:
        log.warning("%s", w)
    t = now()

    configured = {gx.name for gx in inventory}
    for name in sorted(set(st.systems) - configured):
        log.info("gx %s: no longer in %s: removed from the outputs", name, s.inventory)
        del st.systems[name]

    passwords: dict[str, str | None] = {}
    results: dict[str, ProbeResult] = {}
    for gx in inventory:
        try:
            passwords[gx.name] = read_password(gx)
        except OSError as exc:
            results[gx.name] = ProbeResult(outcome="config", reason=f"password_file {gx.password_file}: {describe_error(exc)}")
        except ValueError as exc:
            results[gx.name] = ProbeResult(outcome="config", reason=str(exc))
    REDACTOR.secrets |= {p for p in passwords.values() if p}

    requests: dict[str, ProbeRequest] = {}
    decide: dict[str, Decide] = {}
    for gx in inventory:
        if gx.name in results:
            continue
        rec = st.systems.get(gx.name)
        requests[gx.name] = ProbeRequest(
            gx=gx,
            password=passwords.get(gx.name),
            client_id=f"ovr-disc-{s.node_id}-{gx.name}",
            known_portal=gx.portal_id or (rec.portal_id if rec else None),
            want_names=gx.system_id is None,
            connect_timeout=s.connect_timeout,
            serial_timeout=s.serial_timeout,
            name_timeout=s.name_timeout,
        )
        decide[gx.name] = (lambda r: lambda portal: state.keepalive_mode(r, portal, t, s.full_republish_seconds))(rec)
    results.update(probe_all(requests, decide, s.run_timeout, probe_fn))

    before = dict(st.systems)
    for gx in inventory:
        rec, res = st.systems.get(gx.name), results[gx.name]
        if res.outcome == "ok" and res.portal_id and res.mode:
            new: state.GxRecord | None = state.after_success(rec, res.portal_id, res.mode, res.names, t)
        else:
            new = state.after_failure(rec, res.outcome == "refused", res.reason or res.outcome, t, s.lost_after_seconds)
        if new is not None:
            st.systems[gx.name] = state.expire(new, t, s.grace_seconds)
        if res.outcome == "config":
            summary.rc = EXIT_FAILED

    # system_id for every GX with a record (also dropped ones), so a GX dropping out does not
    # rename the others.
    by_name = {gx.name: gx for gx in inventory}
    ids = assign_system_ids(
        Candidate(name=n, portal_id=r.portal_id, override=by_name[n].system_id, display_name=r.display_name)
        for n, r in st.systems.items()
    )
    views, inputs = [], []
    for gx in inventory:
        rec = st.systems.get(gx.name)
        if rec is None or rec.status not in state.VISIBLE:
            continue
        online = rec.status == state.ONLINE
        views.append(render.SystemView(
            name=gx.name, system_id=ids[gx.name], portal_id=rec.portal_id, host=gx.host, port=gx.port,
            status=rec.status, since=rec.online_since if online else rec.last_seen,
            last_seen=None if online else rec.last_seen,
            drops_at=None if online else rec.last_seen + s.grace_seconds,
        ))
        if gx.password_file and passwords.get(gx.name) is None:
            continue  # unreadable password: an input without it would be a refused login, fatal to Telegraf
        if rec.status in state.IN_TELEGRAF:
            inputs.append(render.InputView(gx=gx, system_id=ids[gx.name], portal_id=rec.portal_id, password=passwords.get(gx.name)))

    portals: dict[str, list[str]] = {}
    for gx in inventory:
        res = results[gx.name]
        if res.outcome == "ok" and res.portal_id:
            portals.setdefault(res.portal_id, []).append(gx.name)
    for portal, names in sorted(portals.items()):
        if len(names) > 1:
            log.warning("gx %s: the same GX (portal %s) is listed %d times: Telegraf reads it %d times; keep one entry",
                        " and ".join(names), portal, len(names), len(names))
    for gx in inventory:
        level, line = _gx_line(gx, results[gx.name], before.get(gx.name), st.systems.get(gx.name), ids.get(gx.name), t, s)
        log.log(level, "%s", line)
    for status in (state.ONLINE, state.LOST, state.REFUSED):
        summary.counts[status] = sum(1 for v in views if v.status == status)

    conf = render.render_telegraf(s.node_id, inputs, str(s.inventory)).encode()
    systems = render.render_systems(s.node_id, s.deployment_id, views).encode()
    if dry_run:
        print(systems.decode(), end="")
        print(telegraf.redact(conf.decode(), REDACTOR.secrets), end="")
        log.info("summary: dry run, nothing written, no reload")
        return summary.rc

    _write_outputs(s, st, conf, systems, summary)
    counts = ", ".join(f"{n} {k}" for k, n in summary.counts.items())
    not_listed = summary.configured - sum(summary.counts.values())
    log.log(
        logging.INFO if summary.rc == EXIT_OK else logging.ERROR,
        "summary: %d GX configured: %s, %d not listed; %s %s, %s %s, telegraf reload %s; %.1fs%s",
        summary.configured, counts, not_listed, s.telegraf_conf.name, summary.conf, s.systems_file.name,
        summary.systems, summary.reload, time.monotonic() - started, "" if summary.rc == EXIT_OK else "; FAILED",
    )
    return summary.rc


def _write_outputs(s: Settings, st: state.State, conf: bytes, systems: bytes, summary: Summary) -> None:
    conf_changed = False
    try:
        gid = files.resolve_group(s.telegraf_conf_group)
        if files.read_bytes(s.telegraf_conf) != conf:
            check = telegraf.config_check(s.telegraf_bin, s.telegraf_config, s.telegraf_config_dir,
                                          s.telegraf_conf.name, conf, REDACTOR.secrets)
            if not check.ok:
                log.error("%s NOT updated (the old one stays): telegraf config check failed: %s", s.telegraf_conf, check.message)
                summary.conf, summary.rc = "rejected by telegraf config check", EXIT_FAILED
            else:
                conf_changed = files.write_if_changed(s.telegraf_conf, conf, 0o640, gid)
                summary.conf = "changed" if conf_changed else "unchanged"
        else:
            files.write_if_changed(s.telegraf_conf, conf, 0o640, gid)
    except files.WriteError as exc:
        log.error("%s", exc)
        summary.conf, summary.rc = "not written", EXIT_FAILED

    if s.reload_command and (conf_changed or st.reload_pending):
        result = telegraf.run_reload(s.reload_command)
        if result.ok:
            summary.reload = "done" + (" (pending from an earlier run)" if not conf_changed else "")
            st.reload_pending = False
            state.after_reload(st)
        else:
            log.error("reload failed, will retry next run: %s", result.message)
            summary.reload, summary.rc = "FAILED", EXIT_FAILED
            st.reload_pending = True
    elif conf_changed:
        summary.reload = "skipped (no OVR_GX_RELOAD_COMMAND)"

    try:
        summary.systems = "changed" if files.write_if_changed(s.systems_file, systems, 0o644) else "unchanged"
    except files.WriteError as exc:
        log.error("%s", exc)
        summary.systems, summary.rc = "not written", EXIT_FAILED
    try:
        try:
            s.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise files.WriteError(f"cannot create {s.state_dir}: {exc.strerror or exc}") from None
        files.write_if_changed(s.state_file, st.to_json().encode(), 0o640)
    except files.WriteError as exc:
        log.error("%s", exc)
        summary.rc = EXIT_FAILED
