"""The API key from Secret Manager, read at run time and cached per instance for a bounded time.

A rotated key (a new `latest` version) takes effect within `API_KEY_CACHE_SECONDS` on a warm
instance, without a redeploy. The client is created once per instance, on first use, so that
`import main` stays cheap on a cold start.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, Tuple

from loader.logs import redact


class SecretError(RuntimeError):
    """The key could not be read; the message names the secret and what to do, never a value."""


_client: Any = None
_cache: Dict[str, Tuple[str, float]] = {}
_lock = threading.Lock()


def _default_client() -> Any:
    from google.cloud import secretmanager

    return secretmanager.SecretManagerServiceClient()


client_factory: Callable[[], Any] = _default_client


def read_api_key(version_name: str, cache_seconds: float, now: Callable[[], float] = time.monotonic) -> str:
    """Return the key stored in a Secret Manager secret version.

    Args:
        version_name: `projects/<p>/secrets/<s>/versions/<v|latest>`.
        cache_seconds: how long a value read earlier on this instance is reused.

    Raises:
        SecretError: the version does not exist, access is denied, or it is empty.
    """
    global _client
    with _lock:
        cached = _cache.get(version_name)
        if cached is not None and now() - cached[1] < cache_seconds:
            return cached[0]
        from google.api_core import exceptions as gexc

        try:
            if _client is None:
                _client = client_factory()
            response = _client.access_secret_version(request={"name": version_name})
        except gexc.NotFound:
            raise SecretError(
                f"Secret Manager: {version_name} not found: create the secret and add the key with "
                f"`gcloud secrets versions add <secret> --data-file=-`, or fix API_KEY_SECRET"
            ) from None
        except gexc.PermissionDenied:
            raise SecretError(
                f"Secret Manager: permission denied on {version_name}: grant the function's service account "
                f"roles/secretmanager.secretAccessor on that secret"
            ) from None
        except gexc.GoogleAPIError as exc:
            raise SecretError(f"Secret Manager: could not read {version_name}: {type(exc).__name__}") from None
        value = response.payload.data.decode("utf-8").strip()
        if not value:
            raise SecretError(f"Secret Manager: {version_name} is empty: add the API key as a new version")
        redact.add(value)
        _cache[version_name] = (value, now())
        return value


def forget_cached_keys() -> None:
    """Drop cached keys and the client (tests; a key rejected by the API)."""
    global _client
    with _lock:
        _cache.clear()
        _client = None
