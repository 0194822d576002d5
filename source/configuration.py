"""The source's settings, checked before the first request: each error names the setting and what it accepts.

The values come from dlt's config providers under `sources.analytics` (env `SOURCES__ANALYTICS__<KEY>`,
`.dlt/config.toml`, `.dlt/secrets.toml`) and `runtime` (`RUNTIME__REQUEST_*`); env values arrive as
strings, toml values typed, so every check accepts both.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from source.errors import ConfigError
from source.settings import (
    AUTH_SCHEMES,
    DEFAULT_AUTH_SCHEME,
    DEFAULT_MAX_PAGES,
    DEFAULT_PROFILE,
    DEFAULT_SESSIONS_LIMIT,
    EVENTS_DEFAULTS,
    EXTRA_RESOURCE_NAMES,
    OVERRIDE_TYPES,
    PARAM_PLACEHOLDERS,
    PROFILES,
    REQUEST_DEFAULTS,
    RESOURCE_DEFAULTS,
    RESOURCE_NAMES,
    RESOURCES,
    SOURCE_NAME,
)

ENV_PREFIX = f"SOURCES__{SOURCE_NAME.upper()}__"
WRITE_DISPOSITIONS = ("merge", "append", "replace")


def env_name(key: str) -> str:
    """`base_url` -> `SOURCES__ANALYTICS__BASE_URL`."""
    return f"{ENV_PREFIX}{key.upper()}"


def where(key: str, secret: bool = False) -> str:
    """How to set a source setting, for error messages."""
    return f"{env_name(key)} ({key} under [sources.{SOURCE_NAME}] in .dlt/{'secrets' if secret else 'config'}.toml)"


@dataclass(frozen=True)
class Runtime:
    """dlt's request settings (`[runtime]`), checked: dlt itself would report a bad value under another name."""

    request_max_attempts: int = int(REQUEST_DEFAULTS["request_max_attempts"])
    request_backoff_factor: float = REQUEST_DEFAULTS["request_backoff_factor"]
    request_timeout: float = REQUEST_DEFAULTS["request_timeout"]
    request_max_retry_delay: float = REQUEST_DEFAULTS["request_max_retry_delay"]


@dataclass(frozen=True)
class SourceConfig:
    """Every user setting of the source, checked (`check_source_config`)."""

    base_url: str
    uid: str
    api_key: str = field(repr=False)
    profile: str = DEFAULT_PROFILE
    auth_scheme: str = DEFAULT_AUTH_SCHEME
    sessions_limit: int = DEFAULT_SESSIONS_LIMIT
    max_pages: int = DEFAULT_MAX_PAGES
    resources: Tuple[Dict[str, Any], ...] = ()  # the effective resource table (`effective_resources`)
    runtime: Runtime = Runtime()
    extra_resources: Tuple[str, ...] = ()  # beyond the seed, added to the default run
    events: Any = None  # source.events.EventsSettings (None: events off)


def check_source_config(
    base_url: Any,
    uid: Any,
    api_key: Any,
    profile: Any = DEFAULT_PROFILE,
    auth_scheme: Any = DEFAULT_AUTH_SCHEME,
    sessions_limit: Any = DEFAULT_SESSIONS_LIMIT,
    max_pages: Any = DEFAULT_MAX_PAGES,
    resources: Any = None,
    runtime: Optional[Mapping[str, Any]] = None,
    extra_resources: Any = None,
    events: Optional[Mapping[str, Any]] = None,
) -> SourceConfig:
    """Check every setting and build the source's configuration.

    Raises:
        ConfigError: naming the first wrong setting and what it accepts.
    """
    for key, value in (("base_url", base_url), ("uid", uid), ("api_key", api_key)):
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(env_name(key), f"missing setting '{key}': set {where(key, key == 'api_key')}")
    if profile not in PROFILES:
        raise ConfigError(
            env_name("profile"),
            f"{env_name('profile')}={profile!r} is not a profile: set it to one of {', '.join(PROFILES)}",
        )
    if auth_scheme not in AUTH_SCHEMES:
        raise ConfigError(
            env_name("auth_scheme"),
            f"{env_name('auth_scheme')}={auth_scheme!r} is not supported: set it to one of {', '.join(AUTH_SCHEMES)}",
        )
    limit = _integer(sessions_limit, env_name("sessions_limit"), minimum=1)
    pages = _integer(max_pages, env_name("max_pages"), minimum=1)
    values = {"uid": uid.strip(), "sessions_limit": limit}
    return SourceConfig(
        base_url=check_base_url(base_url.strip()),
        uid=uid.strip(),
        api_key=api_key.strip(),
        profile=profile,
        auth_scheme=auth_scheme,
        sessions_limit=limit,
        max_pages=pages,
        resources=tuple(effective_resources(profile, resources, values)),
        runtime=check_runtime(runtime or {}),
        extra_resources=check_extra_resources(extra_resources),
        events=check_events(events or {}),
    )


def check_extra_resources(value: Any) -> Tuple[str, ...]:
    """`SOURCES__ANALYTICS__EXTRA_RESOURCES`: a comma-separated list (or a toml list) of resources beyond the seed."""
    if value is None or value == "":
        return ()
    names = [n.strip() for n in value.split(",")] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ConfigError(
            env_name("extra_resources"), f"{where('extra_resources')} must be a comma-separated list of names"
        )
    unknown = [n for n in names if n and n not in EXTRA_RESOURCE_NAMES]
    if unknown:
        raise ConfigError(
            env_name("extra_resources"),
            f"{env_name('extra_resources')} names unknown resources {unknown[:5]}: valid names are "
            f"{', '.join(EXTRA_RESOURCE_NAMES)}",
        )
    return tuple(n for n in EXTRA_RESOURCE_NAMES if n in names)


def check_events(values: Mapping[str, Any]) -> Any:
    """The `events_*` settings as `source.events.EventsSettings` (raises ConfigError naming the setting)."""
    from source.events import EventsSettings

    raw = {key: values.get(key) for key in ("events_start", *EVENTS_DEFAULTS)}
    try:
        return EventsSettings(
            start=raw["events_start"] or None,
            window_hours=_number(_or(raw, "events_window_hours"), env_name("events_window_hours"), 0, strict=True),
            delay_hours=_number(_or(raw, "events_delay_hours"), env_name("events_delay_hours"), 0),
            segment=str(_or(raw, "events_segment")).strip(),
            max_windows=_integer(_or(raw, "events_max_windows"), env_name("events_max_windows"), 1),
            poll_seconds=_number(_or(raw, "events_poll_seconds"), env_name("events_poll_seconds"), 0),
            poll_timeout_seconds=_number(
                _or(raw, "events_poll_timeout_seconds"), env_name("events_poll_timeout_seconds"), 0, strict=True
            ),
        )
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        setting = str(exc).split("=", 1)[0].split(" ", 1)[0]
        raise ConfigError(setting if setting.startswith(ENV_PREFIX) else env_name("events_start"), str(exc)) from None


def _or(values: Mapping[str, Any], key: str) -> Any:
    value = values.get(key)
    return EVENTS_DEFAULTS[key] if value is None or value == "" else value


def check_base_url(url: str) -> str:
    """https, or http on loopback only (local runs and tests): the key never travels in cleartext."""
    name = env_name("base_url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            name, f"{name} must be an https:// URL like https://api.example.com, got a value without scheme or host"
        )
    if parts.username is not None or parts.password is not None:
        # it would be logged with every request and kept in dlt's trace; the key belongs in API_KEY settings
        raise ConfigError(
            name, f"{name} must not carry credentials (user:password@): put the key in {where('api_key', True)}"
        )
    if parts.query or parts.fragment:
        raise ConfigError(
            name, f"{name} must not have a query or fragment: give the API root, e.g. https://api.example.com"
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            name,
            f"{name} is http:// to {parts.hostname}: the API key would travel in cleartext; "
            "use https:// (http is allowed on loopback only)",
        )
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_runtime(values: Mapping[str, Any]) -> Runtime:
    """dlt's `[runtime]` request settings, each a positive number (attempts a whole number)."""
    defaults = Runtime()
    return Runtime(
        request_max_attempts=_integer(
            values.get("request_max_attempts", defaults.request_max_attempts),
            "RUNTIME__REQUEST_MAX_ATTEMPTS",
            1,
            runtime=True,
        ),
        request_backoff_factor=_number(
            values.get("request_backoff_factor", defaults.request_backoff_factor), "RUNTIME__REQUEST_BACKOFF_FACTOR", 0
        ),
        request_timeout=_number(
            values.get("request_timeout", defaults.request_timeout), "RUNTIME__REQUEST_TIMEOUT", 0, strict=True
        ),
        request_max_retry_delay=_number(
            values.get("request_max_retry_delay", defaults.request_max_retry_delay),
            "RUNTIME__REQUEST_MAX_RETRY_DELAY",
            0,
        ),
    )


def _runtime_where(name: str) -> str:
    key = name.split("__", 1)[1].lower()
    return f"{name} ({key} under [runtime] in .dlt/config.toml)"


def _integer(value: Any, name: str, minimum: int, runtime: bool = False) -> int:
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        number = int(str(value).strip())
    except ValueError:
        number = minimum - 1
    if number < minimum:
        label = _runtime_where(name) if runtime or name.startswith("RUNTIME__") else name
        raise ConfigError(name, f"setting {label} must be a whole number >= {minimum}, got {value!r}")
    return number


def _number(value: Any, name: str, minimum: float, strict: bool = False) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(str(value).strip())
    except ValueError:
        number = float("nan")
    ok = number > minimum if strict else number >= minimum
    if not ok or number == float("inf"):
        label = _runtime_where(name) if name.startswith("RUNTIME__") else name
        raise ConfigError(
            name, f"setting {label} must be a number {'>' if strict else '>='} {minimum:g}, got {value!r}"
        )
    return number


def effective_resources(profile: str, overrides: Any, values: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The resource table with the profile's and then the user's overrides applied, every value checked.

    Returns one flat dict per resource: name, path, data_selector, params (placeholders filled),
    primary_key (a list), write_disposition, paginate, keep_fields.
    """
    section = f"[sources.{SOURCE_NAME}.resources]"
    overrides = _parse_overrides(overrides)
    unknown = sorted(set(overrides) - set(RESOURCE_NAMES))
    if unknown:
        raise ConfigError(
            env_name("resources"),
            f"{section} names unknown resources {unknown}: valid names are {', '.join(RESOURCE_NAMES)}",
        )
    table = []
    for entry in RESOURCES:
        name = entry["name"]
        flat: Dict[str, Any] = {
            "name": name,
            "path": entry["endpoint"]["path"],
            "data_selector": entry["endpoint"]["data_selector"],
            "params": dict(entry["endpoint"].get("params", {})),
            "primary_key": RESOURCE_DEFAULTS["primary_key"],
            "write_disposition": RESOURCE_DEFAULTS["write_disposition"],
            "paginate": True,
            "keep_fields": [],
        }
        layers = (
            (PROFILES[profile].get(name, {}), f"profile {profile}"),
            (overrides.get(name, {}), f"[sources.{SOURCE_NAME}.resources.{name}]"),
        )
        for layer, origin in layers:
            if not isinstance(layer, Mapping):
                raise ConfigError(
                    env_name("resources"),
                    f"{origin} must be a table of overrides (keys: {', '.join(OVERRIDE_TYPES)}), got "
                    f"{type(layer).__name__} {layer!r}",
                )
            bad = sorted(set(layer) - set(OVERRIDE_TYPES))
            if bad:
                raise ConfigError(
                    env_name("resources"), f"{origin}: unknown keys {bad}; allowed: {', '.join(OVERRIDE_TYPES)}"
                )
            for key, value in layer.items():
                checked = _check_override(key, value, f"{origin} {key}")
                if key == "params":
                    flat["params"].update(checked)
                else:
                    flat[key] = checked
        flat["params"] = {
            k: fill_placeholders(v, values, f"[sources.{SOURCE_NAME}.resources.{name}] params.{k}")
            for k, v in flat["params"].items()
        }
        flat["primary_key"] = (
            [flat["primary_key"]] if isinstance(flat["primary_key"], str) else list(flat["primary_key"])
        )
        table.append(flat)
    return table


def _parse_overrides(overrides: Any) -> Dict[str, Any]:
    if overrides is None:
        return {}
    if isinstance(overrides, str):  # an env value: JSON
        try:
            overrides = json.loads(overrides)
        except ValueError:
            overrides = None
    if not isinstance(overrides, Mapping):
        raise ConfigError(
            env_name("resources"),
            f"setting {env_name('resources')} must be a JSON object of per-resource overrides, "
            f'e.g. {{"eventDefs": {{"primary_key": "eventName"}}}} '
            f"([sources.{SOURCE_NAME}.resources.<name>] in .dlt/config.toml)",
        )
    return dict(overrides)


def _check_override(key: str, value: Any, label: str) -> Any:
    accepts = OVERRIDE_TYPES[key]
    ok = True
    if key == "data_selector":
        ok = isinstance(value, str) and bool(value.strip())
    elif key == "primary_key":
        ok = (isinstance(value, str) and bool(value)) or (
            isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value)
        )
    elif key == "write_disposition":
        ok = value in WRITE_DISPOSITIONS or (
            isinstance(value, Mapping)
            and value.get("disposition") in WRITE_DISPOSITIONS
            and all(isinstance(v, str) for v in value.values())
        )
    elif key == "paginate":
        ok = isinstance(value, bool)
    elif key == "params":
        ok = isinstance(value, Mapping) and all(
            isinstance(k, str) and isinstance(v, (str, int, float)) and not isinstance(v, bool)
            for k, v in value.items()
        )
    elif key == "path":
        parts = urlsplit(value) if isinstance(value, str) else None
        # an absolute URL would send the key to another host; `//host/...` is one too
        ok = (
            parts is not None
            and value.startswith("/")
            and not value.startswith("//")
            and not parts.scheme
            and not parts.netloc
        )
    elif key == "keep_fields":
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value)
    if not ok:
        raise ConfigError(env_name("resources"), f"{label} must be {accepts}, got {value!r}")
    return dict(value) if isinstance(value, Mapping) else value


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def fill_placeholders(value: Any, values: Mapping[str, Any], label: str) -> Any:
    """Fill `{uid}` / `{sessions_limit}` in a parameter value; nothing else is evaluated."""
    if not isinstance(value, str):
        return value

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in PARAM_PLACEHOLDERS:
            raise ConfigError(
                env_name("resources"),
                f"{label} has the placeholder {{{name}}}: "
                f"only {', '.join('{' + p + '}' for p in PARAM_PLACEHOLDERS)} are filled",
            )
        return str(values[name])

    return _PLACEHOLDER.sub(fill, value)
