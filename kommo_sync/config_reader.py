"""Typed YAML getters that name the key path, and the ${VAR} secrets they read.

`${VAR}` is looked up in the environment, then as `VAR_FILE` (a path to a file holding the
value: Docker and Kubernetes secrets), then in the env file (KEY=value lines), which may also
name a `VAR_FILE`. Every reference in the tree is resolved before any value is read, so every
missing variable is reported at once.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from kommo_sync.errors import ConfigError

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
ENV_LINE = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")
LOOPBACK_NAMES = ("localhost",)


def did_you_mean(value: str, options: Any) -> str:
    """'; did you mean X?' for the option closest to a misspelt `value`, else ''."""
    close = difflib.get_close_matches(str(value), [str(o) for o in options], n=1)
    return f"; did you mean {close[0]}?" if close else ""


def parse_moment(text: str) -> datetime:
    """An ISO date or datetime; UTC unless it carries an offset."""
    value = datetime.fromisoformat(text.strip())
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def reason_of(exc: BaseException) -> str:
    """An OS error's own words ('Permission denied'), without the path it repeats."""
    return getattr(exc, "strerror", None) or str(exc)


def name_or_id(key: str, value: Any) -> str | int:
    """A Kommo field or pipeline named by its name or its numeric id."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise ConfigError(key, "must be a field name or a numeric id")
    return int(value) if isinstance(value, str) and value.isdigit() else value


# secrets -----------------------------------------------------------------------------------------
def read_env_file(path: Path, key: str) -> dict[str, str]:
    """KEY=value lines (`export ` allowed, quotes optional); `#` starts a comment line.
    Errors name the line, never its text: it may hold a secret."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(key, f"file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(key, f"cannot read {path}: {reason_of(exc)}") from None
    values: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = ENV_LINE.fullmatch(line)
        if not match:
            raise ConfigError(key, f"{path} line {number} is not KEY=value")
        values[match.group(1)] = _unquote(match.group(2).strip())
    return values


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


class SecretLookup:
    """Where a ${VAR} value comes from: the environment, a VAR_FILE, the env file."""

    def __init__(
        self, environ: Mapping[str, str], env_file: Mapping[str, str], env_file_name: str | None
    ):
        self.sources, self.env_file_name = (environ, env_file), env_file_name

    def resolve(self, raw: Any) -> dict[str, str]:
        """The value of every ${VAR} in the tree; every missing one reported in one error."""
        values: dict[str, str] = {}
        missing: dict[str, str] = {}
        for key, var in sorted(_references(raw, "")):
            value = values.get(var) or self._value(key, var)
            if value:
                values[var] = value
            else:
                missing.setdefault(key, var)
        if missing:
            raise self._missing(missing)
        return values

    def _value(self, key: str, var: str) -> str | None:
        for source in self.sources:
            direct, file = source.get(var), source.get(f"{var}_FILE")
            if direct and file:
                raise ConfigError(key, f"both {var} and {var}_FILE are set; keep one")
            if direct:
                return direct
            if file:
                return _read_secret_file(key, f"{var}_FILE", Path(file))
        return None

    def _missing(self, missing: dict[str, str]) -> ConfigError:
        where = self.env_file_name or "an env file: --env-file or env_file:"
        variables = sorted(set(missing.values()))
        if len(variables) == 1:
            problem = (
                f"{variables[0]} is not set "
                f"(in the environment, as {variables[0]}_FILE, or in {where})"
            )
        else:
            problem = (
                f"{', '.join(variables)} are not set (in the environment, as *_FILE, or in {where})"
            )
        return ConfigError(", ".join(missing), problem)


def _references(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """(key path, variable) for every ${VAR} in the YAML tree."""
    if isinstance(node, dict):
        for name, value in node.items():
            yield from _references(value, f"{path}.{name}" if path else str(name))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _references(value, f"{path}[{index}]")
    elif isinstance(node, str):
        for match in ENV_REF.finditer(node):
            yield path, match.group(1)


def _read_secret_file(key: str, variable: str, path: Path) -> str:
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(key, f"{variable}: cannot read {path}: {reason_of(exc)}") from None
    if not value:
        raise ConfigError(key, f"{variable}: {path} is empty")
    return value


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _split_url(value: str) -> SplitResult | None:
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises on a port that is not a number
        return parts
    except ValueError:  # an unclosed [IPv6 host, a port out of range
        return None


# the typed getters -------------------------------------------------------------------------------
class Section:
    """One mapping of the YAML tree, with typed getters that name the full key path on error.
    `values` holds the resolved ${VAR} references (see SecretLookup.resolve)."""

    def __init__(self, raw: Any, path: str, values: Mapping[str, str]):
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(path or "(top level)", "must be a mapping of keys to values")
        self.raw, self.path, self.values = raw, path, values

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def has(self, name: str) -> bool:
        return self.raw.get(name) is not None

    def is_literal(self, name: str) -> bool:
        """Whether the value is written out rather than a ${VAR} reference."""
        value = self.raw.get(name)
        return isinstance(value, (str, int)) and value != "" and not ENV_REF.search(str(value))

    def only(self, *names: str) -> None:
        for name in self.raw:
            if name not in names:
                hint = did_you_mean(name, names) or " (expected one of " + ", ".join(names) + ")"
                raise ConfigError(self.key(str(name)), "unknown key" + hint)

    def section(self, name: str, required: bool = True) -> Section:
        if required and not self.has(name):
            raise ConfigError(self.key(name), "required")
        return Section(self.raw.get(name), self.key(name), self.values)

    def _value(self, name: str) -> Any:
        return self._interpolate(self.raw.get(name))

    def _interpolate(self, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        return ENV_REF.sub(lambda match: self.values[match.group(1)], value)

    def text(self, name: str, default: str | None = None) -> str:
        value = self._value(name)
        if value is None or value == "":
            if default is None:
                raise ConfigError(self.key(name), "required")
            return default
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise ConfigError(self.key(name), "must be text")
        return str(value)

    def optional_text(self, name: str) -> str | None:
        return self.text(name) if self.has(name) else None

    def name_or_id(self, name: str) -> str | int | None:
        value = self._value(name)
        return None if value is None else name_or_id(self.key(name), value)

    def url(self, name: str, default: str | None, carries: str) -> SplitResult:
        """A URL; http only to a loopback host, since `carries` (the token, the key) travels
        with it."""
        value = self.text(name, default).rstrip("/")
        parts = _split_url(value)
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                self.key(name), f"must be a URL like https://mycompany.kommo.com, got {value!r}"
            )
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ConfigError(
                self.key(name),
                f"must use https ({carries} would travel in clear); "
                "http is only for 127.0.0.1, ::1 and localhost",
            )
        return parts

    def number(self, name: str, default: float, low: float, high: float) -> float:
        value = self._value(name)
        if value is None:
            return default
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(self.key(name), "must be a number") from None
        if not low <= number <= high:
            raise ConfigError(self.key(name), f"must be between {low:g} and {high:g}")
        return number

    def flag(self, name: str, default: bool) -> bool:
        value = self._value(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(self.key(name), "must be true or false")
        return value

    def choice(self, name: str, options: tuple[str, ...], default: str) -> str:
        value = self.text(name, default)
        if value not in options:
            raise ConfigError(
                self.key(name),
                f"must be one of {', '.join(options)}, got {value!r}"
                + did_you_mean(value, options),
            )
        return value

    def moment(self, name: str) -> datetime | None:
        value = self._value(name)
        if value is None:
            return None
        try:
            return parse_moment(str(value))
        except ValueError:
            raise ConfigError(self.key(name), f"not an ISO date or datetime: {value!r}") from None

    def mapping(self, name: str, default: Mapping[str, str]) -> dict[str, str]:
        value = self.raw.get(name)
        if value is None:
            return dict(default)
        sub = Section(value, self.key(name), self.values)
        return {str(k): sub.text(str(k)) for k in sub.raw}

    def items(self, name: str, convert: Callable[[str, Any], Any]) -> list[Any]:
        value = self.raw.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise ConfigError(self.key(name), "must be a list")
        return [
            convert(f"{self.key(name)}[{i}]", self._interpolate(item))
            for i, item in enumerate(value)
        ]


def origin(parts: SplitResult) -> str:
    """scheme://host[:port] of a URL, for the example in an error message."""
    return f"{parts.scheme}://{parts.netloc}"
