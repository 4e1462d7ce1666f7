"""Settings from an env file (systemd EnvironmentFile=, rendered by the roles) and the process
environment, described by one typed table per service.

A table maps a settings field to Var(variable, default, help, parse); parse(var, text) turns
the text into the typed value or raises SettingsError naming the variable. `describe()` prints
the table for `--help`. Cross-field checks stay in the service's load function.

    ENV = {"stale_seconds": Var("OVR_X_STALE_SECONDS", "120", "shown offline after", number(1))}
    values = load_table(ENV, settings_env(Path("/etc/ovr/cloud.env"), os.environ))
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class SettingsError(ValueError):
    """A variable is missing or wrong; the message names it (and the file it came from)."""


Parser = Callable[[str, str], Any]


def text(var: str, value: str) -> str:
    return value


class Var(tuple):
    """(variable, default, help) - unpacks as those three - plus `parse`."""

    def __new__(cls, var: str, default: str, help: str, parse: Parser = text) -> Var:
        self = super().__new__(cls, (var, default, help))
        self.parse = parse
        return self

    @property
    def var(self) -> str:
        return self[0]

    @property
    def default(self) -> str:
        return self[1]

    @property
    def help(self) -> str:
        return self[2]


# ---- parsers: (variable, text) -> value ---------------------------------------------------
def number(minimum: float = -math.inf, maximum: float = math.inf, *, above: bool = False,
           unit: str = "a number") -> Parser:
    """A finite float in [minimum, maximum] (above: strictly more than minimum)."""

    def parse(var: str, value: str) -> float:
        try:
            result = float(value)
        except ValueError:
            raise SettingsError(f"{var}={value!r}: expected {unit}") from None
        low_ok = result > minimum if above else result >= minimum
        if not math.isfinite(result) or not low_ok or result > maximum:
            if maximum == math.inf:
                raise SettingsError(f"{var}={value!r}: must be {'>' if above else '>='} {minimum:g}")
            raise SettingsError(f"{var}={value!r}: must be between {minimum:g} and {maximum:g}")
        return result

    return parse


def integer(minimum: float = -math.inf, maximum: float = math.inf, *, strict: bool = False) -> Parser:
    """An int in [minimum, maximum]; a number text like 1e3 or 2.5 is taken as its integer part
    unless `strict` (digits only)."""
    inner = number(minimum, maximum)

    def parse(var: str, value: str) -> int:
        if strict:
            try:
                int(value)
            except ValueError:
                raise SettingsError(f"{var}: expected an integer, got {value!r}") from None
        return int(inner(var, value))

    return parse


def boolean(var: str, value: str) -> bool:
    low = value.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{var}: expected true/false, got {value!r}")


def absolute_path(var: str, value: str) -> Path:
    if not value.startswith("/"):
        raise SettingsError(f"{var}={value!r}: must be an absolute path")
    return Path(value)


def log_level(var: str, value: str) -> str:
    level = value.upper()
    if level not in LOG_LEVELS:
        raise SettingsError(f"{var}={level!r}: one of {', '.join(LOG_LEVELS)}")
    return level


def command(var: str, value: str) -> tuple[str, ...]:
    """A command line split as a shell would (no shell runs it); empty: no command."""
    try:
        return tuple(shlex.split(value))
    except ValueError as exc:
        raise SettingsError(f"{var}: {exc}") from None


def optional(parse: Parser) -> Parser:
    """Empty text is None, anything else goes through `parse`."""
    return lambda var, value: None if value == "" else parse(var, value)


# ---- the table ----------------------------------------------------------------------------
def load_table(table: Mapping[str, Var], env: Mapping[str, str], *, empty_is_default: bool = False) -> dict[str, Any]:
    """field -> parsed value for every entry; a missing variable takes the table's default.
    empty_is_default: VAR= (empty) also takes the default."""
    values: dict[str, Any] = {}
    for field, entry in table.items():
        raw = env.get(entry.var)
        if raw is None or (empty_is_default and raw.strip() == ""):
            raw = entry.default
        values[field] = entry.parse(entry.var, raw.strip())
    return values


def describe(table: Mapping[str, Var], source: str, width: int = 32) -> str:
    """The environment contract, for --help."""
    lines = [f"environment (from {source}):"]
    for entry in table.values():
        lines.append(f"  {entry.var:<{width}} {entry.help}" + (f" [default {entry.default!r}]" if entry.default else ""))
    return "\n".join(lines)


# ---- env files ----------------------------------------------------------------------------
def parse_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile reads them ('#'/';' comments, optional
    quotes, an optional `export `)."""
    result: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if key.startswith("export "):
            key = key[len("export "):].strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        result[key] = value
    return result


def read_env_file(path: Path, missing_ok: bool = False) -> dict[str, str]:
    """The file's variables; SettingsError naming the file when it can not be read."""
    try:
        return parse_env_file(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if missing_ok:
            return {}
        raise SettingsError(f"{path}: not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None


def settings_env(env_file: Path | None, environ: Mapping[str, str], prefix: str = "OVR_",
                 missing_ok: bool = False) -> dict[str, str]:
    """The file's variables, overridden by the environment's `prefix*` ones (as with systemd,
    where the unit's Environment= can override)."""
    merged = read_env_file(env_file, missing_ok) if env_file is not None else {}
    merged.update({k: v for k, v in environ.items() if k.startswith(prefix)})
    return merged


def naming_file(env_file: Path | None, load: Callable[[], Any]) -> Any:
    """load(), with the env file added to the message of a SettingsError it raises."""
    try:
        return load()
    except SettingsError as exc:
        if env_file is None or str(env_file) in str(exc):
            raise
        raise SettingsError(f"{exc} (read from {env_file} and the environment)") from None
