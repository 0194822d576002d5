"""The analytics API's resource table: one declarative description of the ten endpoints.

`RESOURCES` mirrors the seed's `rest_api_source` configuration
(`shared/seed/analytics-api-source.md`) entry by entry, so the two can be read side by side;
`RESOURCE_DEFAULTS` and `CURSOR_PAGINATOR` hold what every entry shares. `PROFILES` holds
per-resource overrides for the shapes the real API documents (`shared/reference/real-api.md`).
Everything else (code, simulator, tests, docs, Terraform checks) reads these names from here.
"""

from typing import Any, Dict, List, Tuple

SOURCE_NAME = "analytics"  # dlt source name and config section: SOURCES__ANALYTICS__<KEY>

# The seed's retry policy: retry exactly these statuses, at most 3 retries (4 attempts), backoff
# factor 2. Attempts and backoff are dlt runtime settings (`.dlt/config.toml` [runtime]).
RETRY_STATUSES: Tuple[int, ...] = (429, 500, 502, 503, 504)
# The request settings' defaults: the seed's 3 retries are 4 attempts (dlt counts attempts).
# Each is a dlt `[runtime]` setting, overridable with RUNTIME__<KEY> or in .dlt/config.toml.
REQUEST_DEFAULTS: Dict[str, float] = {
    "request_max_attempts": 4,
    "request_backoff_factor": 2,
    "request_timeout": 60,  # seconds for a whole answer (not each read)
    "request_max_retry_delay": 60,
}

CURSOR_PAGINATOR: Dict[str, Any] = {
    "type": "cursor",
    "cursor_path": "nextPaginationToken",
    "cursor_param": "pagination_token",
}

RESOURCE_DEFAULTS: Dict[str, Any] = {
    "primary_key": "id",
    "write_disposition": "merge",
}

# "{uid}" is filled from the `uid` setting when the source is built.
RESOURCES: List[Dict[str, Any]] = [
    {"name": "sessions", "endpoint": {"path": "/sessions/v2", "params": {"uid": "{uid}"}, "data_selector": "sessions"}},
    {"name": "segments", "endpoint": {"path": "/segments/v1", "data_selector": "segments"}},
    {"name": "operations", "endpoint": {"path": "/operations/v1", "data_selector": "operations"}},
    {"name": "blockrules", "endpoint": {"path": "/settings/recording/v1/blocking", "data_selector": "blockrules"}},
    {
        "name": "domainsettings",
        "endpoint": {"path": "/settings/recording/v1/domain", "data_selector": "domainsettings"},
    },
    {"name": "geosettings", "endpoint": {"path": "/settings/recording/v1/geo", "data_selector": "geosettings"}},
    {
        "name": "recordingfeatures",
        "endpoint": {"path": "/settings/recording/v1/features", "data_selector": "recordingfeatures"},
    },
    {
        "name": "sessionTargetingRules",
        "endpoint": {"path": "/settings/recording/v1/targeting", "data_selector": "sessionTargetingRules"},
    },
    {"name": "webhooks", "endpoint": {"path": "/webhooks/v1/endpoints", "data_selector": "webhooks"}},
    {"name": "eventDefs", "endpoint": {"path": "/webhooks/v1/event-types", "data_selector": "eventDefs"}},
]

RESOURCE_NAMES: Tuple[str, ...] = tuple(r["name"] for r in RESOURCES)
PATHS: Dict[str, str] = {r["name"]: r["endpoint"]["path"] for r in RESOURCES}

# A settings object answered as one bare JSON object: the whole body is the record.
WHOLE_BODY = "$"
# Singletons have no natural key: keep the current snapshot plus the history of its changes
# (dlt's scd2: a new row version only when the object changed; reruns add nothing).
SINGLETON = {
    "data_selector": WHOLE_BODY,
    "primary_key": [],
    "write_disposition": {"disposition": "merge", "strategy": "scd2"},
    "paginate": False,
}
LIMIT_MAX = 100  # the documented maximum page size of the list endpoints that take `limit`

# Per-resource overrides of the table above, by profile. Keys: data_selector, primary_key,
# write_disposition, paginate (False: one request, no cursor), params (merged into the endpoint's).
PROFILES: Dict[str, Dict[str, Dict[str, Any]]] = {
    "seed": {},
    "documented": {
        "sessions": {"primary_key": "sessionId", "paginate": False, "params": {"limit": "{sessions_limit}"}},
        "segments": {"params": {"limit": LIMIT_MAX}},
        "operations": {"params": {"limit": LIMIT_MAX}},
        "blockrules": SINGLETON,
        "domainsettings": SINGLETON,
        "geosettings": SINGLETON,
        "recordingfeatures": SINGLETON,
        "sessionTargetingRules": {"paginate": False},
        "webhooks": {"data_selector": "endpoints", "params": {"limit": LIMIT_MAX}},
        "eventDefs": {"primary_key": "eventName"},
    },
}
DEFAULT_PROFILE = "seed"
# What a per-resource override ([sources.analytics.resources.<name>]) may set, and the type of each.
OVERRIDE_TYPES: Dict[str, str] = {
    "data_selector": 'a JSONPath string, e.g. "sessions" or "$"',
    "primary_key": "a field name or a list of field names",
    "write_disposition": '"merge", "append", "replace" or a table like {disposition = "merge", strategy = "scd2"}',
    "paginate": "true or false",
    "params": "a table of query parameters whose values are strings or numbers",
    "path": 'a path on the API\'s host starting with /, e.g. "/sessions/v2"',
    "keep_fields": "a list of field names to load although their names say secret/token/password/api key",
}
OVERRIDE_KEYS = tuple(OVERRIDE_TYPES)
# The only placeholders a `params` value may hold; each is filled from the setting of that name.
PARAM_PLACEHOLDERS = ("uid", "sessions_limit")

# Identifiers load as text whatever JSON type they arrive in: `1` and `"1"` are one key, and an API
# that switches from numbers to strings cannot stop the load (a column typed bigint refuses "abc").
KEY_DATA_TYPE = "text"

# Fields never loaded unless a resource's `keep_fields` names them: credentials in the warehouse
# (some published schemas of the webhook endpoints carry a signing secret) outlive any key rotation.
SECRET_FIELD_PATTERN = r"(?i)(secret|token|passw(or)?d|api[-_ ]?key)"

# Resources whose volume grows with traffic. In a run with others they are extracted, normalized
# and loaded last; the sessions chain's requests go out from the start (read ahead, bounded).
LONG_CHAINS: Tuple[str, ...] = ("sessions", "events")

DEFAULT_MAX_PAGES = 100_000  # per resource and run: far above any real chain, finite for an endless one

AUTH_SCHEMES = ("bearer", "basic")
DEFAULT_AUTH_SCHEME = "bearer"
DEFAULT_SESSIONS_LIMIT = 1000

# -- Beyond the seed (source/events.py, users.py, history.py, key_check.py) -------------------------
# Loaded only when a run names them (POST body or SOURCES__ANALYTICS__EXTRA_RESOURCES); the ten
# seed resources stay the default.
HISTORY_PATHS: Dict[str, str] = {
    "blockrules_history": "/settings/recording/v1/blocking/history",
    "domainsettings_history": "/settings/recording/v1/domain/history",
    "geosettings_history": "/settings/recording/v1/geo/history",
    "privacy_history": "/settings/recording/v1/privacy/history",
    "recordingfeatures_history": "/settings/recording/v1/features/history",
    "sessionTargetingRules_history": "/settings/recording/v1/targeting/history",
}
EXTRA_PATHS: Dict[str, str] = {"events": "/segments/v1/exports", "users": "/v2/users", **HISTORY_PATHS}
EXTRA_RESOURCE_NAMES: Tuple[str, ...] = tuple(EXTRA_PATHS)
# Resources that keep a cursor in dlt's state (source/events.py, source/history.py)
INCREMENTAL_RESOURCES: Tuple[str, ...] = ("events", *HISTORY_PATHS)
ME_PATH = "/me"
HISTORY_LIMIT = 100  # versions per history page (the documented maximum; the API's default is 20)
# `events_*` settings under `sources.analytics` (SOURCES__ANALYTICS__EVENTS_*); `events_start` has
# no default: the events resource is off until it is set.
EVENTS_DEFAULTS: Dict[str, Any] = {
    "events_window_hours": 1.0,  # the vendor's loader: 1 h windows, 15 min to 24 h allowed
    "events_delay_hours": 24.0,  # values settle for up to 24 h after an event
    "events_segment": "everyone",
    "events_max_windows": 24,  # windows per run: a backfill continues on the next runs
    "events_poll_seconds": 5.0,  # between polls of the export operation (the vendor's loader: 5 s)
    "events_poll_timeout_seconds": 900.0,  # longest wait for one export to complete
}
