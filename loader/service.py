"""The function as an HTTP service: parse the request, resolve settings, get the key, run, answer.

Answers (JSON): 200 `status: ok`; 400 bad body; 405 not POST; 409 a run is already in progress on
this instance or, with `RUN_LOCK_BUCKET`, on another one; 413 body too large; 500 configuration /
Secret Manager / run lock / warehouse problems; 502 the API failed for one or more resources (the
others are loaded, see `resources`).
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import IO, Any, Dict, List, Optional, Tuple

from loader.environment import SettingsError, load_settings
from loader.logs import redact, setup_logging
from loader.run_lock import RunLockError, RunLockHeldError, take_run_lock
from loader.secrets import SecretError, forget_cached_keys, read_api_key
from source.errors import ConfigError
from source.settings import EXTRA_RESOURCE_NAMES, RESOURCE_NAMES

VALID_NAMES = RESOURCE_NAMES + EXTRA_RESOURCE_NAMES

log = setup_logging()
_run_lock = threading.Lock()

Answer = Tuple[int, Dict[str, Any]]


BUSY = "a run is already in progress on this instance; try again when it ends"
# The largest body a caller needs (all ten names) is under 300 bytes; 64 KiB leaves room for any
# formatting and refuses anything else before it is parsed or held in memory.
MAX_BODY_BYTES = 64 * 1024
# Unknown names echoed back in a 400: the first few, each cut short, and how many more.
_SHOWN_NAMES, _SHOWN_CHARS = 5, 40


class BadRequestError(ValueError):
    """The POST body is not one the function accepts; the message says what to send."""


def _lock_working_folder(data_dir: Path) -> Optional[IO[str]]:
    """An exclusive lock on the working folder, held for the run; None when another process has it.

    The thread lock covers one process; this covers several workers sharing one instance's /tmp.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / "run.lock", "w")  # noqa: SIM115 (the lock is held as long as the file stays open)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def read_body(stream: IO[bytes], declared_length: Optional[int]) -> bytes:
    """At most `MAX_BODY_BYTES` + 1 bytes of a request body: enough to tell that it is too large.

    Nothing is read when the declared length is already over the cap; a body without a declared
    length (chunked) is read in pieces until the cap is passed or it ends.
    """
    if declared_length is not None and declared_length > MAX_BODY_BYTES:
        return b""
    chunks: List[bytes] = []
    size = 0
    while size <= MAX_BODY_BYTES:
        chunk = stream.read(MAX_BODY_BYTES + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _some(names: List[str]) -> str:
    """A few names, each cut short, and how many more: the message stays short whatever was sent."""
    shown = [n if len(n) <= _SHOWN_CHARS else n[:_SHOWN_CHARS] + "..." for n in names[:_SHOWN_NAMES]]
    more = f" and {len(names) - _SHOWN_NAMES} more" if len(names) > _SHOWN_NAMES else ""
    return f"{shown}{more}"


def parse_body(raw: bytes) -> Optional[List[str]]:
    """The resources a request asks for; None for an empty body or `{}`: the default run (the seed's
    ten and `SOURCES__ANALYTICS__EXTRA_RESOURCES`)."""
    valid = f"valid names: {', '.join(VALID_NAMES)}"
    text = raw.decode("utf-8", errors="replace").strip() if raw else ""
    if not text:
        return None
    try:
        body = json.loads(text)
    except ValueError:
        raise BadRequestError(f'the body is not valid JSON: send {{}} or {{"resources": [...]}}; {valid}') from None
    except RecursionError:
        raise BadRequestError(f'the body is nested too deeply: send {{}} or {{"resources": [...]}}; {valid}') from None
    if not isinstance(body, dict):
        raise BadRequestError(f'the body must be a JSON object like {{"resources": ["sessions"]}}; {valid}')
    unknown_keys = sorted(set(body) - {"resources"})
    if unknown_keys:
        raise BadRequestError(f'unknown field(s) {_some(unknown_keys)}: the only field is "resources"; {valid}')
    if "resources" not in body:
        return None
    names = body["resources"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise BadRequestError(f'"resources" must be a non-empty list of resource names; {valid}')
    unknown = list(dict.fromkeys(n for n in names if n not in VALID_NAMES))
    if unknown:
        raise BadRequestError(f"unknown resource(s) {_some(unknown)}; {valid}")
    return [n for n in VALID_NAMES if n in names]


def missing_settings_message(exc: Any) -> str:
    """Name each missing setting and where to set it (dlt's exception lists provider traces)."""
    parts = []
    for name in getattr(exc, "fields", []):
        env = f"SOURCES__ANALYTICS__{name.upper()}"
        where = (
            f"{env} (or {name} under [sources.analytics] in .dlt/{'secrets' if name == 'api_key' else 'config'}.toml)"
        )
        if name == "api_key":
            where = f"API_KEY_SECRET (a Secret Manager version) or {where}"
        parts.append(f"'{name}': set {where}")
    return "missing setting " + "; ".join(parts)


def handle(method: str, raw_body: bytes, declared_length: Optional[int] = None) -> Answer:
    """Serve one request. Never raises; never puts the key in the answer.

    `declared_length` is the request's Content-Length: over `MAX_BODY_BYTES`, the body is refused
    without being read (`read_body` then returns nothing).
    """
    run_id = uuid.uuid4().hex[:12]
    if method != "POST":
        return 405, {"status": "error", "run_id": run_id, "error": f"method {method} not allowed: use POST"}
    size = max(len(raw_body), declared_length or 0)
    if size > MAX_BODY_BYTES:
        declared = f" ({declared_length} bytes)" if declared_length and declared_length > MAX_BODY_BYTES else ""
        return 413, {
            "status": "error",
            "run_id": run_id,
            "error": (
                f"the body is too large{declared}: the limit is {MAX_BODY_BYTES} bytes ({MAX_BODY_BYTES // 1024} KiB); "
                'send {} or {"resources": [...]}'
            ),
        }
    try:
        resources = parse_body(raw_body)
    except BadRequestError as exc:
        return 400, {"status": "error", "run_id": run_id, "error": str(exc)}
    if not _run_lock.acquire(blocking=False):
        return _busy(run_id)
    try:
        status, body = _run(resources, run_id)
    finally:
        _run_lock.release()
    body = json.loads(redact(json.dumps(body)))
    log.log(40 if status >= 500 else 20, f"run answered {status}", extra={"run_id": run_id, "http_status": status})
    return status, body


def _run(resources: Optional[List[str]], run_id: str) -> Answer:
    started = time.monotonic()
    log.info("run started", extra={"run_id": run_id, "resources": resources or "default"})
    try:
        settings = load_settings()
        os.environ.setdefault("DLT_DATA_DIR", str(settings.data_dir))
        folder_lock = _lock_working_folder(settings.data_dir)
        if folder_lock is None:
            return _busy(run_id)
        try:
            instance_lock = take_run_lock(settings, run_id)  # None without RUN_LOCK_BUCKET
            try:
                secret = settings.api_key_secret
                api_key = read_api_key(secret, settings.api_key_cache_seconds) if secret else None
                from loader.pipeline import run_load

                result = run_load(settings, resources, api_key, run_id)
            finally:
                if instance_lock is not None:
                    instance_lock.release()
        finally:
            # unlocked, not only closed: a process forked during the run (a long chain's reader,
            # source/reader_process.py) holds a copy of the descriptor, and with it the lock
            fcntl.flock(folder_lock, fcntl.LOCK_UN)
            folder_lock.close()
    except RunLockHeldError as exc:
        return _busy(run_id, str(exc))
    except (SettingsError, SecretError, RunLockError, ConfigError) as exc:
        return _error(500, run_id, str(exc), started)
    except Exception as exc:  # dlt wraps everything in PipelineStepFailed
        return _error(500, run_id, _describe(exc), started)
    body: Dict[str, Any] = {
        "status": "ok" if not result.failed else "error",
        "run_id": run_id,
        "pipeline": result.pipeline,
        "destination": result.destination,
        "dataset": result.dataset,
        "load_ids": result.load_ids,
        "row_counts": result.row_counts,
        "resources": result.resources,
        "key_check": result.key_check,
        "duration_s": round(time.monotonic() - started, 3),
    }
    if not result.failed:
        return 200, body
    if any(r.get("status_code") in (401, 403) for r in result.resources.values()):
        forget_cached_keys()  # a rotated key: read it again on the next run
    body["error"] = (
        f"{len(result.failed)} of {len(result.resources)} resource(s) failed (the others loaded): "
        + "; ".join(f"{name}: {reason}" for name, reason in result.failed.items())
    )
    return 502, body


def _describe(exc: BaseException) -> str:
    from dlt.common.configuration.exceptions import ConfigFieldMissingException, ConfigValueCannotBeCoercedException

    seen: Optional[BaseException] = exc
    while seen is not None:
        if isinstance(seen, ConfigFieldMissingException):
            return missing_settings_message(seen)
        if isinstance(seen, ConfigValueCannotBeCoercedException):
            kind = getattr(seen.hint, "__name__", str(seen.hint))
            example = ' (a JSON object, e.g. {"eventDefs": {"primary_key": "eventName"}})' if kind == "dict" else ""
            return (
                f"setting SOURCES__ANALYTICS__{seen.field_name.upper()} ({seen.field_name} under [sources.analytics] "
                f"in .dlt/config.toml) is not a valid {kind}{example}"
            )
        if isinstance(seen, (ConfigError, SettingsError)):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    step = getattr(exc, "step", None)
    cause = exc.__cause__ or exc
    where = f"the {step} step failed" if step else "the run failed"
    return f"{where}: {type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"


def _busy(run_id: str, message: str = BUSY) -> Answer:
    log.warning(message, extra={"run_id": run_id})
    return 409, {"status": "error", "run_id": run_id, "error": message}


def _error(status: int, run_id: str, message: str, started: float) -> Answer:
    log.error(message, extra={"run_id": run_id})
    return status, {
        "status": "error",
        "run_id": run_id,
        "error": message,
        "duration_s": round(time.monotonic() - started, 3),
    }
