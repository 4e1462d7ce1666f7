"""Check a candidate gx_mqtt_sources.conf with the real Telegraf, and run the reload command.

The check loads exactly what the daemon would: the main config plus a private copy of the
config directory (every *.conf, sub-directories too, as Telegraf walks them) in which the
candidate replaces the current file. The copy lives in a 0700 temporary directory (PrivateTmp
under systemd) because the candidate holds passwords.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

CHECK_TIMEOUT = 60.0
RELOAD_TIMEOUT = 60.0
TAIL_LINES = 8


@dataclass(frozen=True)
class CommandResult:
    ok: bool
    message: str


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _tail(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-TAIL_LINES:])


def _copy_conf_tree(src: Path, dst: Path, skip: Path) -> None:
    if not src.is_dir():
        return
    for root, _dirs, files in os.walk(src):
        rel = Path(root).relative_to(src)
        for name in files:
            path = Path(root) / name
            if not name.endswith(".conf") or path == skip:
                continue
            (dst / rel).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dst / rel / name)


def config_check(
    telegraf_bin: str,
    main_config: Path,
    config_dir: Path,
    conf_name: str,
    candidate: bytes,
    secrets: Iterable[str] = (),
) -> CommandResult:
    """`telegraf config check --config <main> --config-directory <copy with the candidate>`."""
    secrets = list(secrets)
    with tempfile.TemporaryDirectory(prefix="ovr-gx-check-") as tmp:
        tmpdir = Path(tmp)
        try:
            _copy_conf_tree(config_dir, tmpdir, config_dir / conf_name)
        except OSError as exc:
            return CommandResult(False, f"cannot copy {config_dir} for the check: {exc.strerror or exc}")
        cand = tmpdir / conf_name
        fd = os.open(cand, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(candidate)
        cmd = [telegraf_bin, "config", "check", "--config", str(main_config), "--config-directory", tmp]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CHECK_TIMEOUT, check=False)
        except FileNotFoundError:
            return CommandResult(False, f"telegraf not found at {telegraf_bin} (OVR_TELEGRAF_BIN)")
        except (OSError, subprocess.TimeoutExpired) as exc:
            return CommandResult(False, f"{telegraf_bin} config check did not run: {exc}")
        output = (proc.stderr + "\n" + proc.stdout).replace(tmp, str(config_dir))
        if proc.returncode != 0:
            return CommandResult(False, redact(f"rc={proc.returncode}: {_tail(output)}", secrets))
        return CommandResult(True, "")


def run_reload(command: Sequence[str]) -> CommandResult:
    if not command:
        return CommandResult(True, "no reload command (OVR_GX_RELOAD_COMMAND is empty)")
    try:
        proc = subprocess.run(list(command), capture_output=True, text=True, timeout=RELOAD_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return CommandResult(False, f"{' '.join(command)}: {exc}")
    if proc.returncode != 0:
        return CommandResult(False, f"{' '.join(command)} rc={proc.returncode}: {_tail(proc.stderr + proc.stdout)}")
    return CommandResult(True, "")
