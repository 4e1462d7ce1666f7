#!/usr/bin/env python3
"""Converge benchmark: the wall time of a no-op converge of one demo edge and of the demo cloud.

A benchmark with one assertion: every timed converge must end with changed=0 (and nothing failed
or unreachable) in its play recap, or the run fails and names the tasks that changed.

    .venv/bin/python bench/converge.py             # make bench-converge
    .venv/bin/python bench/converge.py --no-ssh    # only through podman

It uses the demo fleet (scripts/demo.sh: containers ovr-demo-gx, -edge, -cloud). When one of them
is not running, `scripts/demo.sh up` starts them and converges site.yml: that is the first
converge. Otherwise the first converge is `ansible-playbook -i inventory/demo site.yml`, to reach
steady state. Then, per host, the timed one, as the issue measured it:

    ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks \\
        ansible-playbook -i inventory/demo site.yml --limit <host>

- podman: the demo inventory's connection (containers.podman.podman), as make demo and Molecule.
- ssh: the same play over SSH with pipelining (ansible.cfg), to root at the container's podman
  address, with a key the benchmark makes and authorizes in the container (a second inventory
  source sets ansible_connection/ansible_host per host; inventory_dir stays inventory/demo).
The 5 slowest tasks of each timed run come from profile_tasks. The demo containers keep running.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lib
from lib import REPO, BenchError, Processes, log

NAME = "converge"
JSON_SUFFIX = ""
FLEET = ("ovr-demo-gx", "ovr-demo-edge", "ovr-demo-cloud")
HOSTS = ("ovr-demo-edge", "ovr-demo-cloud")
GOAL_S = 30.0
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)"
                   r"\s+rescued=(\d+)\s+ignored=(\d+)")
PROFILE_LINE = re.compile(r"^(.+?) -+ (\d+\.\d+)s$")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-ssh", action="store_true", help="skip the runs over SSH")
    ap.add_argument("--skip-first", action="store_true", help="no first converge (the fleet is known to be steady)")
    ap.add_argument("--hosts", default=",".join(HOSTS), help="hosts to time, default %(default)s")
    lib.add_common_args(ap, NAME)
    return ap.parse_args(argv)


def running(name: str) -> bool:
    out = subprocess.run(["podman", "inspect", "-f", "{{.State.Running}}", name], capture_output=True, text=True,
                         check=False, timeout=60)
    return out.stdout.strip() == "true"


def podman_ip(name: str) -> str:
    out = subprocess.run(["podman", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name],
                         capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.split()[0]


def playbook(work: Path, tag: str, env: dict[str, str], *extra: str) -> dict[str, Any]:
    """ansible-playbook -i inventory/demo site.yml `extra`: wall time, recap, changed tasks, slowest tasks."""
    argv = [lib.tool("ansible-playbook"), "-i", "inventory/demo", *extra]
    logf = work / f"{tag}.log"
    log(f"{tag}: {' '.join(argv[1:])}")
    t0 = time.monotonic()
    with open(logf, "w") as out:
        rc = subprocess.run(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    wall = time.monotonic() - t0
    text = logf.read_text(errors="replace")
    recap = {m[1]: dict(zip(("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored"),
                            map(int, m.groups()[1:]), strict=True))
             for m in map(RECAP.match, text.splitlines()) if m}
    changed, task = [], ""
    for line in text.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task = line.split("[", 1)[1].rsplit("]", 1)[0]
        elif line.startswith("changed: ["):
            changed.append(f"{line.split('[', 1)[1].split(']', 1)[0]}: {task}")
    profile = text.split("PLAY RECAP", 1)[-1].split("=" * 20, 1)
    slowest = [{"task": m[1].strip(), "s": float(m[2])}
               for m in map(PROFILE_LINE.match, profile[1].splitlines() if len(profile) > 1 else []) if m]
    out = {"argv": argv[1:], "rc": rc, "wall_s": round(wall, 1), "recap": recap, "changed_tasks": changed,
           "tasks": sum(1 for ln in text.splitlines() if ln.startswith("TASK [")), "slowest": slowest[:5]}
    if rc != 0 or not recap:
        out["tail"] = text[-3000:]
    log(f"{tag}: {wall:.1f} s, rc {rc}, recap {recap}")
    return out


def ssh_overlay(work: Path, hosts: list[str]) -> tuple[Path | None, str]:
    """A second inventory source that reaches `hosts` over SSH as root; (None, why) when not possible."""
    if not shutil.which("ssh"):
        return None, "no ssh client on this machine"
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ovr-bench-converge", "-f", str(key)],
                   check=True, timeout=60)
    pub = (work / "id_ed25519.pub").read_text().strip()
    inv: dict[str, Any] = {"all": {"hosts": {}}}
    for h in hosts:
        add = ("install -d -m 0700 /root/.ssh && touch /root/.ssh/authorized_keys && "
               "grep -v ' ovr-bench-converge$' /root/.ssh/authorized_keys > /root/.ssh/ak.new || true; "
               f"echo '{pub}' >> /root/.ssh/ak.new && chmod 0600 /root/.ssh/ak.new && "
               "mv /root/.ssh/ak.new /root/.ssh/authorized_keys")
        subprocess.run(["podman", "exec", h, "sh", "-c", add], check=True, timeout=60)
        ip = podman_ip(h)
        probe = subprocess.run(["ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                                "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10", f"root@{ip}", "true"],
                               capture_output=True, text=True, timeout=60, check=False)
        if probe.returncode != 0:
            return None, f"ssh root@{ip} ({h}) failed: {probe.stderr.strip()[-300:]}"
        inv["all"]["hosts"][h] = {
            "ansible_connection": "ssh", "ansible_host": ip, "ansible_user": "root",
            "ansible_ssh_private_key_file": str(key),
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        }
    path = work / "ssh-inventory.yml"
    path.write_text(json.dumps(inv))  # JSON is YAML: the yaml inventory plugin reads it
    return path, ""


def run(args: argparse.Namespace, work: Path, procs: Processes, result: dict[str, Any]) -> None:
    hosts = [h for h in args.hosts.split(",") if h]
    if not shutil.which("podman"):
        raise BenchError("podman not found: make host")
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0", NO_COLOR="1",
               ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", TELEGRAF_BIN=lib.locate_telegraf(),
               PATH=f"{Path(lib.tool('ansible-playbook')).parent}:{os.environ.get('PATH', '')}")
    version = subprocess.run([lib.tool("ansible-playbook"), "--version"], capture_output=True, text=True, timeout=120,
                             check=False).stdout.splitlines()
    result["meta"] |= {"ansible": version[0] if version else "?", "hosts": hosts, "goal_s": GOAL_S,
                       "command": "ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks "
                                  "ansible-playbook -i inventory/demo site.yml --limit <host>"}
    down = [h for h in FLEET if not running(h)]
    if down:
        log(f"{', '.join(down)} not running: scripts/demo.sh up (its converge of site.yml is the first one)")
        t0 = time.monotonic()
        rc = subprocess.run([str(REPO / "scripts/demo.sh"), "up"], cwd=REPO, env=env, check=False,
                            stdout=open(work / "demo-up.log", "w"), stderr=subprocess.STDOUT).returncode  # noqa: SIM115
        result["first"] = {"how": "scripts/demo.sh up", "rc": rc, "wall_s": round(time.monotonic() - t0, 1)}
        if rc != 0:
            raise BenchError(f"scripts/demo.sh up failed (rc {rc}):\n{(work / 'demo-up.log').read_text()[-3000:]}")
    elif not args.skip_first:
        result["first"] = {"how": "ansible-playbook -i inventory/demo site.yml"} | playbook(work, "first", env, "site.yml")
        if result["first"]["rc"] != 0:
            raise BenchError(f"the first converge failed:\n{result['first'].get('tail', '')}")
    overlay, why = (None, "--no-ssh") if args.no_ssh else ssh_overlay(work, hosts)
    if overlay is None:
        result["ssh_skipped"] = why
        log(f"SSH runs skipped: {why}")
    result["runs"] = []
    for host in hosts:
        for conn in ("podman", "ssh") if overlay else ("podman",):
            extra = ["-i", str(overlay)] if conn == "ssh" else []
            r = playbook(work, f"{host}-{conn}", env, *extra, "site.yml", "--limit", host)
            r |= {"host": host, "connection": conn}
            result["runs"].append(r)
    result["failures"] = [
        f"{r['host']} via {r['connection']}: rc {r['rc']}, recap {r['recap'].get(r['host'])}; changed: "
        f"{'; '.join(r['changed_tasks']) or '-'}" + (f"\n{r['tail']}" if "tail" in r else "")
        for r in result["runs"]
        if r["rc"] != 0 or any(r["recap"].get(r["host"], {"changed": -1}).get(k) != 0
                               for k in ("changed", "failed", "unreachable"))]


def print_report(result: dict[str, Any]) -> None:
    meta = result["meta"]
    lib.print_header("No-op converge of the demo fleet (changed=0 asserted)", meta, meta["ansible"])
    print(f"command: {meta['command']}")
    first = result.get("first")
    if first:
        print(f"first converge (to steady state): {first['how']}: {first['wall_s']} s, rc {first['rc']}")
    print("")
    print(f"{'host':16s}{'connection':14s}{'wall s':>8s}{'tasks':>7s}{'ok':>5s}{'changed':>9s}{'failed':>8s}   goal")
    for r in result["runs"]:
        rec = r["recap"].get(r["host"], {})
        print(f"{r['host']:16s}{r['connection']:14s}{r['wall_s']:8.1f}{r['tasks']:7d}{rec.get('ok', '?'):>5}"
              f"{rec.get('changed', '?'):>9}{rec.get('failed', '?'):>8}   <={meta['goal_s']:g} s "
              f"{lib.verdict(r['wall_s'] <= meta['goal_s'])}")
    if "ssh_skipped" in result:
        print(f"ssh: not measured ({result['ssh_skipped']})")
    for r in result["runs"]:
        print(f"\n-- 5 slowest tasks, {r['host']} via {r['connection']} (profile_tasks) --")
        for t in r["slowest"]:
            print(f"{t['s']:8.2f} s  {t['task']}")
    for f in result.get("failures", []):
        print(f"FAILED: {f}")
    lib.print_footer(result)


def main(argv: list[str] | None = None) -> int:
    return lib.main(sys.modules[__name__], parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
