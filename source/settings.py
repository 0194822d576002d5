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
    {"name": "domainsettings", "endpoint": {"path": "/settings/recording/v1/domain", "data_selector": "domainsettings"}},
    {"name": "geosettings", "endpoint": {"path": "/settings/recording/v1/geo", "data_selector": "geosettings"}},
    {"name": "recordingfeatures", "endpoint": {"path": "/settings/recording/v1/features", "data_selector": "recordingfeatures"}},
    {"name": "sessionTargetingRules", "endpoint": {"path": "/settings/recording/v1/targeting", "data_selector": "sessionTargetingRules"}},
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
OVERRIDE_KEYS = ("data_selector", "primary_key", "write_disposition", "paginate", "params", "path")

AUTH_SCHEMES = ("bearer", "basic")
DEFAULT_AUTH_SCHEME = "bearer"
DEFAULT_SESSIONS_LIMIT = 1000
