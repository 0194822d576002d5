"""The key check before a run (`GET /me`) and the 403 message that names the key's role.

The API's key levels: reading settings works with a Standard key; reading or exporting user
data needs an Architect key, and the segment export needs the plan's data export add-on. `/me`
reports a role (UNKNOWN, ADMIN, USER, VIEW_ONLY, UMBRELLA_MANAGER, ARCHITECT); the docs say it may
be the role of the user who created the key, so it is a hint: a 403 stays the authority.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

from dlt.sources.helpers.rest_client import RESTClient

from source.settings import HISTORY_PATHS, ME_PATH

STANDARD = "a Standard key"
ARCHITECT = "an Architect key"
EXPORT_ADD_ON = "an Architect key and the plan's data export add-on (segment exports)"

# What each resource needs of the key and the plan. Settings (and their history) read with a
# Standard key; user data (users, privacy settings, sessions) needs Architect.
REQUIRED_ACCESS: Dict[str, str] = {
    "events": EXPORT_ADD_ON,
    "users": ARCHITECT,
    "sessions": ARCHITECT,
    **{name: STANDARD for name in HISTORY_PATHS},
    "privacy_history": ARCHITECT,
}


@dataclass(frozen=True)
class KeyCheck:
    """The answer of `GET /me`: the role, or why there is none (`reason`, for the run's log)."""

    role: Optional[str]
    status: Optional[int] = None
    reason: Optional[str] = None


def check_key(client: RESTClient) -> KeyCheck:
    """One `GET /me`. Never raises: a failed check is reported in `reason` (no key in it)."""
    try:
        response = client.get(ME_PATH)
    except Exception as exc:  # the check is a hint: nothing here may stop the run
        return KeyCheck(None, None, f"GET {ME_PATH} failed: {type(exc).__name__}")
    status = response.status_code
    if status != 200:
        return KeyCheck(None, status, f"GET {ME_PATH} answered HTTP {status}")
    try:
        body = response.json()
    except ValueError:
        return KeyCheck(None, status, f"GET {ME_PATH} answered something that is not JSON")
    role = body.get("role") if isinstance(body, dict) else None
    if not isinstance(role, str) or not role:
        return KeyCheck(None, status, f"GET {ME_PATH} answered no role")
    return KeyCheck(role, status, None)


def key_role(client: RESTClient) -> Optional[str]:
    """The role `GET /me` reports for the key, or None when the check failed (never raises)."""
    return check_key(client).role


def forbidden_message(resource: str, role: Optional[str]) -> str:
    """The text for a 403 on `resource`: the role the key reported and what the resource needs."""
    if role:
        reported = f"the key reports role {role} (GET {ME_PATH})"
    else:
        reported = f"the key's role is unknown (GET {ME_PATH} failed)"
    needs = REQUIRED_ACCESS.get(resource)
    wanted = f"; {resource} needs {needs}" if needs else ""
    return (
        f"HTTP 403 Forbidden: {reported}{wanted}. Use a key of that level "
        f"(SOURCES__ANALYTICS__API_KEY / API_KEY_SECRET), or leave {resource} out of the run"
    )
